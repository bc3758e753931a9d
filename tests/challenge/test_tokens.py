"""Pass tokens: worth something only unaltered, unexpired, signed by a known key, from the client that earned them."""

from __future__ import annotations

import pytest

from gate.challenge.signing import b64decode, b64encode
from gate.challenge.tokens import COOKIE, PassToken, cookie_value, set_cookie
from gate.facts import Facts
from gate.keys import KeyRing, SecretKey
from tests.challenge.test_pow import NOW, UA, facts

KEYS = KeyRing((SecretKey(b"k" * 32),))


def minted() -> PassToken:
    return PassToken.mint(facts(), "rule-x", "js", 1000, 16, 3600, NOW)


def test_a_token_opens_to_what_was_sealed() -> None:
    token = minted()
    assert PassToken.open(KEYS, token.seal(KEYS)) == token
    assert token.valid_for(facts(), NOW + 10)


@pytest.mark.parametrize("client", [facts(ip="198.51.100.1"), facts(ip="2001:db8::1"), facts(user_agent=UA + " extra")])
def test_a_token_from_another_network_or_browser_is_worthless(client: Facts) -> None:
    assert not minted().valid_for(client, NOW + 10)


def test_an_expired_token_is_worthless() -> None:
    assert not minted().valid_for(facts(), NOW + 3601)


@pytest.mark.parametrize(
    "text",
    ["", "p1", "p1.a.b.c", "c1." + minted().seal(KEYS).split(".", 1)[1], minted().seal(KEYS) + "x",
     minted().seal(KeyRing((SecretKey(b"z" * 32),)))],
)  # fmt: skip
def test_forged_or_tampered_tokens_do_not_open(text: str) -> None:
    assert PassToken.open(KEYS, text) is None


def test_the_budget_cannot_be_raised_by_editing_the_cookie() -> None:
    version, payload, key_id, signature = minted().seal(KEYS).split(".")
    raised = b64encode(b64decode(payload).replace(b'"budget":1000', b'"budget":99999999'))
    assert PassToken.open(KEYS, ".".join([version, raised, key_id, signature])) is None


def test_the_cookie_is_read_among_others() -> None:
    value = minted().seal(KEYS)
    header = f"theme=dark; {COOKIE}={value}; other={COOKIE}x"
    request = facts()
    request.headers["cookie"] = header
    assert cookie_value(request) == value


def test_cookie_attributes() -> None:
    cookie = set_cookie("v", 3600, secure=True, domain="example.org")
    assert cookie == f"{COOKIE}=v; Path=/; Max-Age=3600; HttpOnly; SameSite=Lax; Secure; Domain=example.org"
    assert "Secure" not in set_cookie("v", 60, secure=False, domain=None)
