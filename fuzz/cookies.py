"""Fuzz target: the Cookie and Authorization headers (any bytes, split at the first newline) of a request, read for the
pass cookie and the consent token, which are then opened.

Allowed outcomes: no value, or a value taken from the header that opens to nothing or to the token gate signed.
"""

from __future__ import annotations

from fuzz.common import CONSENT, KEYS, PASS, fuzz, request  # first: it imports gate under instrumentation
from gate.challenge.tokens import PassToken, cookie_value
from gate.terms.consent import ConsentToken, presented_token


def test_one_input(data: bytes) -> None:
    cookie, _, authorization = data.partition(b"\n")
    facts = request([(b"cookie", cookie), (b"authorization", authorization)])
    passed = cookie_value(facts)
    assert passed is None or passed in facts.headers["cookie"]
    assert passed is None or PassToken.open(KEYS, passed) in (None, PASS)
    consent = presented_token(facts)
    assert consent is None or ConsentToken.open(KEYS, consent) in (None, CONSENT)


if __name__ == "__main__":
    pass_text, consent_text = PASS.seal(KEYS), CONSENT.seal(KEYS)
    fuzz(
        test_one_input,
        [
            f"session=abc; gate_pass={pass_text}; gate_consent={consent_text}\n".encode(),
            f'gate_pass="{pass_text}"\nBearer {consent_text}'.encode(),
        ],
    )
