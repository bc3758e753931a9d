"""After a challenge the client goes back where it was going: on this site, whatever the request line said."""

from __future__ import annotations

import pytest

from gate.challenge.redirect import safe_return_to

OFF_SITE = [
    "//evil.example/",
    "///evil.example/",
    "/\\evil.example/",
    "\\\\evil.example/",
    "/\\/evil.example",
    "https://evil.example/",
    "http:evil.example",
    "javascript:alert(1)",
    "evil.example/path",
    "",
    "/%2F%2Fevil.example",
    "/%2f/evil.example",
    "%2F%2Fevil.example",
    "/%5Cevil.example",
    "/%5cevil.example",
    "/%252F%252Fevil.example",
    "/%25252F%25252Fevil.example",
    "/%09/evil.example",
    "/\t/evil.example",
    "/\r\nLocation: https://evil.example/",
    "/%0d%0aSet-Cookie:%20a=b",
    "/%00",
    "/\x00evil",
    "/café",
    "/" + "a" * 3000,
    " //evil.example/",
    "/\x7f",
]


@pytest.mark.parametrize("target", OFF_SITE)
def test_anything_that_could_leave_the_site_becomes_the_home_page(target: str) -> None:
    assert safe_return_to(target) == "/"


@pytest.mark.parametrize(
    "target",
    ["/", "/essays/one.html", "/search?q=a%2Fb&page=2", "/caf%C3%A9/", "/a/b.c/d..e", "/?next=//evil.example"],
)
def test_plain_paths_on_this_site_are_kept_byte_for_byte(target: str) -> None:
    assert safe_return_to(target) == target


def test_a_long_target_still_fits_in_a_verifiable_challenge() -> None:
    from gate.challenge.pow import Challenge, check
    from gate.keys import KeyRing, SecretKey
    from tests.challenge.test_pow import NOW, facts

    keys = KeyRing((SecretKey(b"k" * 32),))
    target = safe_return_to("/" + "a" * 1023)
    assert target != "/"
    token = Challenge.new("nojs", facts(), 0, "r" * 64, target, NOW).seal(keys)
    assert check(keys, token, facts(), NOW + 5).to == target


@pytest.mark.parametrize("target", ["/feed/../admin/", "/a/%2e%2e/b", "/a/%252e%252e/b", "/./x", "/a/..;x/b?q=1"])
def test_a_target_with_dot_segments_becomes_the_home_page(target: str) -> None:
    # The challenge page previews its target: it must be the page the rules judged, not one the upstream resolves.
    assert safe_return_to(target) == "/"
