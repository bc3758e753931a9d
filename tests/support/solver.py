"""A client that solves gate's challenge in Python, the way the page's JavaScript does, for server-side tests."""

from __future__ import annotations

import html
import json
import re
from dataclasses import dataclass

import httpx

from gate.challenge.pow import work_done

_DATA = re.compile(r'<script type="application/json" id="gate-challenge">(.*?)</script>', re.DOTALL)
_NOJS = re.compile(r'<meta http-equiv="refresh" content="(\d+);\s*url=([^"]+)"')


@dataclass(frozen=True)
class PageChallenge:
    token: str
    difficulty: int
    verify_url: str
    nojs_delay: int
    nojs_url: str


def read_challenge(page: str) -> PageChallenge:
    data = json.loads(_DATA.search(page).group(1))  # type: ignore[union-attr]
    refresh = _NOJS.search(page)
    assert refresh is not None, "the page has no no-JavaScript refresh"
    return PageChallenge(data["challenge"], data["difficulty"], data["verifyUrl"], int(refresh.group(1)),
                         html.unescape(refresh.group(2)))  # fmt: skip


def solve(token: str, difficulty: int) -> str:
    nonce = 0
    while not work_done(token, str(nonce), difficulty):
        nonce += 1
    return str(nonce)


def submit(client: httpx.Client, challenge: PageChallenge, nonce: str | None = None) -> httpx.Response:
    """POST a solution (by default a correct one), without following the redirect."""
    return client.post(
        challenge.verify_url,
        data={
            "challenge": challenge.token,
            "nonce": nonce or solve(challenge.token, challenge.difficulty),
            "elapsed_ms": "42",
        },
        follow_redirects=False,
    )
