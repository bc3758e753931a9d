"""Fuzz target: a pass token, a consent token, or a challenge submission (the token, a newline, the nonce) as
a client sends them.

Allowed outcomes: a refusal (None, ChallengeError) or exactly the token gate signed; any other exception is a crash.
"""

from __future__ import annotations

from fuzz.common import (  # first: it imports gate under instrumentation
    CHALLENGE,
    CHALLENGE_TEXT,
    CLIENT,
    CONSENT,
    KEYS,
    NONCE,
    NOW,
    PASS,
    fuzz,
)
from gate.challenge.pow import ChallengeError, check
from gate.challenge.tokens import PassToken
from gate.terms.consent import ConsentToken


def test_one_input(data: bytes) -> None:
    token, _, nonce = data.decode("utf-8", "replace").partition("\n")  # form fields arrive percent-decoded
    assert PassToken.open(KEYS, token) in (None, PASS)
    assert ConsentToken.open(KEYS, token) in (None, CONSENT)
    try:
        earned = check(KEYS, token, CLIENT, NOW + 1, nonce)
    except ChallengeError:
        return
    assert earned == CHALLENGE


if __name__ == "__main__":
    fuzz(test_one_input, [PASS.seal(KEYS).encode(), CONSENT.seal(KEYS).encode(), f"{CHALLENGE_TEXT}\n{NONCE}".encode()])
