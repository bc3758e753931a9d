"""`gate ranges update`: fetch the address lists crawler operators publish, check them, and write them where the
rules read them. A running gate sees the changed files and reloads by itself.

A payload is written only when it is what the operator's format promises (a JSON object whose `prefixes` hold
`ipv4Prefix`/`ipv6Prefix` entries that parse): Google's retired URLs, for one, still answer 200 with an "Action
needed" page, and writing that would empty the list and turn every real Googlebot into an impostor.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from gate.net import parse_network

GOOGLE = "https://developers.google.com/static/crawling/ipranges/"  # moved from /static/search/apis/ in 2026
# The lists the shipped `verified:` section reads, and the operators' own URLs for them.
SOURCES: dict[str, tuple[str, ...]] = {
    "google-crawlers": tuple(
        GOOGLE + name
        for name in (
            "common-crawlers.json",
            "special-crawlers.json",
            "user-triggered-fetchers.json",
            "user-triggered-fetchers-google.json",
            "user-triggered-agents.json",
        )
    ),
    "bingbot": ("https://www.bing.com/toolbox/bingbot.json",),
    "applebot": ("https://search.developer.apple.com/applebot.json",),
    "duckduckbot": ("https://duckduckgo.com/duckduckbot.json",),
    "openai-gptbot": ("https://openai.com/gptbot.json",),
    "openai-searchbot": ("https://openai.com/searchbot.json",),
    "openai-chatgpt-user": ("https://openai.com/chatgpt-user.json",),
    "perplexity-bot": ("https://www.perplexity.ai/perplexitybot.json",),
    "perplexity-user": ("https://www.perplexity.ai/perplexity-user.json",),
    "commoncrawl": ("https://index.commoncrawl.org/ccbot.json",),
    "ahrefs": ("https://api.ahrefs.com/v3/public/crawler-ips",),  # {"ips": [{"ip_address": ...}]}: addresses
}
MAX_BYTES = 4 * 1024 * 1024
FETCH_SECONDS = 30.0


class RangesError(Exception):
    """A list that was not written, and why."""


@dataclass(frozen=True, slots=True)
class Updated:
    name: str
    count: int
    previous: int | None  # prefixes in the file before, None when there was none


# The shapes operators publish: a list under one key, each entry a mapping holding the prefix under one of the names.
SHAPES = {"prefixes": ("ipv4Prefix", "ipv6Prefix"), "ips": ("ip_address",)}


def prefixes_of(payload: bytes, url: str) -> list[str]:
    """The prefixes in one operator payload (Google's shape, which most operators copied, or Ahrefs' list of
    addresses); RangesError when it is neither."""
    try:
        data: Any = json.loads(payload)
    except (ValueError, RecursionError) as error:
        raise RangesError(f"{url}: not JSON ({error})") from error
    shape = next((key for key in SHAPES if isinstance(data, dict) and isinstance(data.get(key), list)), None)
    entries = data[shape] if shape is not None else None
    if shape is None or not entries:
        raise RangesError(f"{url}: no `prefixes` list in the answer (a moved or retired URL?)")
    prefixes = []
    for entry in entries:
        found = (entry.get(name) for name in SHAPES[shape]) if isinstance(entry, dict) else iter(())
        text = next((value for value in found if value), None)
        if not isinstance(text, str):
            raise RangesError(f"{url}: an entry without {' or '.join(SHAPES[shape])}: {str(entry)[:80]}")
        try:
            prefixes.append(str(parse_network(text)))
        except ValueError as error:
            raise RangesError(f"{url}: {error}") from error
    return prefixes


def render(name: str, urls: tuple[str, ...], prefixes: list[str]) -> str:
    fetched = time.strftime("%Y-%m-%d", time.gmtime())
    header = [
        f"# {name}: published by the operator; written by `gate ranges update`",
        f"# source: {', '.join(urls)}",
        f"# fetched: {fetched}",
        f"# count: {len(prefixes)}",
    ]
    return "\n".join([*header, *prefixes]) + "\n"


def write_atomically(path: Path, text: str) -> None:
    """Readers see the old file or the new one, never half of one."""
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    temporary.write_text(text, encoding="utf-8")
    os.replace(temporary, path)


def count_prefixes(path: Path) -> int | None:
    if not path.exists():
        return None
    return sum(1 for line in path.read_text().splitlines() if line.strip() and not line.startswith("#"))


def update(directory: Path, sources: dict[str, tuple[str, ...]]) -> tuple[list[Updated], list[str]]:
    """Fetch and write each list; the lists written, and a line for each that was not (its file left as it was)."""
    written: list[Updated] = []
    problems: list[str] = []
    with httpx.Client(
        timeout=FETCH_SECONDS, follow_redirects=False, headers={"User-Agent": "gate ranges update"}
    ) as client:
        for name, urls in sources.items():
            try:
                prefixes: list[str] = []
                for url in urls:
                    prefixes += prefixes_of(fetch(client, url), url)
            except RangesError as error:
                problems.append(f"{name}: not written: {error}")
                continue
            path = directory / f"{name}.txt"
            previous = count_prefixes(path)
            unique = sorted(set(prefixes), key=lambda text: (":" in text, parse_network(text)))
            write_atomically(path, render(name, urls, unique))
            written.append(Updated(name, len(unique), previous))
    return written, problems


def fetch(client: httpx.Client, url: str) -> bytes:
    try:
        with client.stream("GET", url) as response:
            if response.status_code != 200:
                raise RangesError(f"{url}: HTTP {response.status_code}")
            body = bytearray()
            for chunk in response.iter_bytes():
                body += chunk
                if len(body) > MAX_BYTES:
                    raise RangesError(f"{url}: larger than {MAX_BYTES} bytes")
            return bytes(body)
    except httpx.HTTPError as error:
        raise RangesError(f"{url}: {error}") from error
