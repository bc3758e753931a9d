"""Challenges: stateless and signed; only real work, by the client it was issued to, in time, earns a pass."""

from __future__ import annotations

import hashlib
import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gate.challenge.pow import (
    CHEAP_TAIL,
    LIFETIME_SECONDS,
    Challenge,
    ChallengeError,
    check,
    leading_zero_bits,
    nojs_wait,
    work_done,
)
from gate.challenge.signing import b64decode, b64encode
from gate.check import NO_PROXIES
from gate.facts import Facts
from gate.keys import KeyRing, SecretKey

NOW = 1_800_000_000.0
UA = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36"


def facts(ip: str = "203.0.113.7", user_agent: str = UA) -> Facts:
    scope: dict[str, Any] = {"type": "http", "method": "GET", "scheme": "https", "path": "/", "raw_path": b"/",
                             "query_string": b"", "headers": [(b"host", b"blog.example"),
                             (b"user-agent", user_agent.encode())], "client": (ip, 1)}  # fmt: skip
    return Facts.from_scope(scope, NO_PROXIES)


def solve(token: str, difficulty: int) -> str:
    nonce = 0
    while not work_done(token, str(nonce), difficulty):
        nonce += 1
    return str(nonce)


@pytest.fixture
def keys() -> KeyRing:
    return KeyRing((SecretKey(b"k" * 32),))


def issue(keys: KeyRing, difficulty: int = 8, **overrides: Any) -> str:
    return Challenge.new("js", overrides.pop("client", facts()), difficulty, "rule-x", "/essays/", NOW).seal(keys)


def test_a_solved_challenge_checks_out(keys: KeyRing) -> None:
    token = issue(keys)
    challenge = check(keys, token, facts(), NOW + 1, solve(token, 8))
    assert (challenge.rule, challenge.to, challenge.difficulty) == ("rule-x", "/essays/", 8)


def test_the_same_network_and_user_agent_may_redeem(keys: KeyRing) -> None:
    token = issue(keys)
    check(keys, token, facts(ip="203.0.113.200"), NOW + 1, solve(token, 8))  # same /24


@pytest.mark.parametrize(
    ("client", "reason"),
    [
        (facts(ip="198.51.100.7"), "binding"),
        (facts(ip="2001:db8::7"), "binding"),  # a dual-stack client that switched family
        (facts(user_agent=UA.replace("131", "132")), "binding"),
    ],
)
def test_another_client_cannot_redeem_it(keys: KeyRing, client: Facts, reason: str) -> None:
    token = issue(keys)
    with pytest.raises(ChallengeError) as error:
        check(keys, token, client, NOW + 1, solve(token, 8))
    assert error.value.reason == reason


def test_too_little_work_is_refused(keys: KeyRing) -> None:
    token = issue(keys, difficulty=12)
    weak = next(str(n) for n in range(100000) if work_done(token, str(n), 4) and not work_done(token, str(n), 12))
    with pytest.raises(ChallengeError, match="insufficient-work"):
        check(keys, token, facts(), NOW + 1, weak)


@pytest.mark.parametrize("nonce", ["", "-1", "01", "1e3", " 1", "١٢", "9" * 21, None])
def test_malformed_nonces_are_refused(keys: KeyRing, nonce: str | None) -> None:
    token = issue(keys, difficulty=0)
    with pytest.raises(ChallengeError, match="insufficient-work"):
        check(keys, token, facts(), NOW + 1, nonce)


def test_an_old_challenge_is_refused(keys: KeyRing) -> None:
    token = issue(keys)
    with pytest.raises(ChallengeError, match="expired"):
        check(keys, token, facts(), NOW + LIFETIME_SECONDS + 1, solve(token, 8))


def tampered(token: str, **changes: Any) -> str:
    version, payload, key_id, signature = token.split(".")
    fields = json.loads(b64decode(payload))
    fields.update(changes)
    return ".".join([version, b64encode(json.dumps(fields).encode()), key_id, signature])


@pytest.mark.parametrize("change", [{"difficulty": 0}, {"prefix": "198.51.100.0/24"}, {"issued": int(NOW) + 10**6},
                                    {"to": "//evil.example/"}, {"kind": "nojs"}])  # fmt: skip
def test_a_tampered_challenge_is_refused(keys: KeyRing, change: dict[str, Any]) -> None:
    token = tampered(issue(keys), **change)
    with pytest.raises(ChallengeError, match="bad-signature"):
        check(keys, token, facts(), NOW + 1, solve(token, 0))


def test_a_challenge_signed_by_an_unknown_key_is_refused(keys: KeyRing) -> None:
    token = issue(KeyRing((SecretKey(b"x" * 32),)))
    with pytest.raises(ChallengeError, match="unknown-key"):
        check(keys, token, facts(), NOW + 1, solve(token, 8))


def test_the_previous_key_still_verifies_during_a_rotation(keys: KeyRing) -> None:
    token = issue(keys)
    rotated = KeyRing((SecretKey(b"n" * 32), *keys.keys))
    check(rotated, token, facts(), NOW + 1, solve(token, 8))


def test_the_no_javascript_challenge_asks_for_time(keys: KeyRing) -> None:
    token = Challenge.new("nojs", facts(), 5, "rule-x", "/", NOW).seal(keys)
    with pytest.raises(ChallengeError, match="too-early"):
        check(keys, token, facts(), NOW + 4)
    assert check(keys, token, facts(), NOW + 5).kind == "nojs"


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=600), st.one_of(st.none(), st.text(max_size=30)))
def test_garbage_is_refused_never_raised(token: str, nonce: str | None) -> None:
    keys = KeyRing((SecretKey(b"k" * 32),))
    with pytest.raises(ChallengeError):
        check(keys, token, facts(), NOW, nonce)


def test_leading_zero_bits_counts_from_the_most_significant_bit() -> None:
    assert leading_zero_bits(bytes([0, 0, 0b0001_0000]) + bytes(29)) == 19
    assert leading_zero_bits(hashlib.sha256(b"abc").digest()) == 0


@pytest.mark.parametrize("length", range(0, 64, 3))
def test_tokens_leave_room_for_the_nonce_in_their_last_block(keys: KeyRing, length: int) -> None:
    # Otherwise every attempt costs the browser two SHA-256 blocks instead of one.
    token = Challenge.new("js", facts(), 4, "r" * length, "/" + "p" * length, NOW).seal(keys)
    assert len(token) % 64 <= CHEAP_TAIL
    assert check(keys, token, facts(), NOW + 1, solve(token, 4)).rule == "r" * length


def test_without_javascript_harder_challenges_mean_longer_waits(keys: KeyRing) -> None:
    token = Challenge.new("nojs", facts(), 20, "rule-x", "/", NOW).seal(keys)
    assert nojs_wait(16) == 5 and nojs_wait(20) == 13
    with pytest.raises(ChallengeError, match="too-early"):
        check(keys, token, facts(), NOW + 12)
    assert check(keys, token, facts(), NOW + 13).difficulty == 20
