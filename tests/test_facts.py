"""Facts.from_scope: what gate knows about a request, from a hand-built ASGI scope."""

from __future__ import annotations

from typing import Any

from gate.asgi import Scope
from gate.facts import Facts
from gate.net import TrustedProxies, parse_network

TRUSTED = TrustedProxies([parse_network("10.0.0.0/8"), parse_network("fd00::/8")])
NO_PROXIES = TrustedProxies(())


def scope(
    headers: list[tuple[str, str]] | None = None,
    client: tuple[str, int] | None = ("203.0.113.9", 50000),
    **extra: Any,
) -> Scope:
    built: Scope = {
        "type": "http",
        "method": "GET",
        "scheme": "http",
        "path": "/page",
        "query_string": b"a=1&b=2",
        "headers": [(name.encode("latin-1"), value.encode("latin-1")) for name, value in headers or []],
        "client": client,
    }
    built.update(extra)
    return built


def test_basic_request_facts() -> None:
    facts = Facts.from_scope(
        scope([("Host", "example.com"), ("User-Agent", "curl/8.0")], method="POST", path="/a b"), NO_PROXIES
    )
    assert facts.method == "POST"
    assert facts.scheme == "http"
    assert facts.host == "example.com"
    assert facts.path == "/a b"
    assert facts.query == "a=1&b=2"
    assert facts.ip == "203.0.113.9"
    assert facts.prefix == "203.0.113.0/24"
    assert facts.peer == "203.0.113.9"
    assert facts.peer_trusted is False
    assert facts.user_agent == "curl/8.0"


def test_header_names_are_lower_cased() -> None:
    facts = Facts.from_scope(scope([("X-Custom-Header", "yes")]), NO_PROXIES)
    assert facts.headers == {"x-custom-header": "yes"}


def test_repeated_headers_are_joined_with_comma() -> None:
    facts = Facts.from_scope(scope([("Accept", "text/html"), ("X-Other", "1"), ("accept", "*/*")]), NO_PROXIES)
    assert facts.headers["accept"] == "text/html, */*"


def test_repeated_cookie_headers_are_joined_with_semicolon() -> None:
    facts = Facts.from_scope(scope([("Cookie", "a=1"), ("cookie", "b=2")]), NO_PROXIES)
    assert facts.headers["cookie"] == "a=1; b=2"


def test_missing_user_agent_is_empty() -> None:
    assert Facts.from_scope(scope(), NO_PROXIES).user_agent == ""


def test_ipv6_client_gets_its_slash_64_prefix() -> None:
    facts = Facts.from_scope(scope(client=("2001:db8:1:2:3:4:5:6", 50000)), NO_PROXIES)
    assert facts.ip == "2001:db8:1:2:3:4:5:6"
    assert facts.prefix == "2001:db8:1:2::/64"


def test_client_behind_trusted_proxy_comes_from_x_forwarded_for() -> None:
    facts = Facts.from_scope(scope([("X-Forwarded-For", "1.1.1.1, 198.51.100.7")], client=("10.0.0.1", 40000)), TRUSTED)
    assert facts.ip == "198.51.100.7"
    assert facts.prefix == "198.51.100.0/24"
    assert facts.peer == "10.0.0.1"
    assert facts.peer_trusted is True


def test_repeated_x_forwarded_for_headers_are_walked_as_one_list() -> None:
    facts = Facts.from_scope(
        scope([("X-Forwarded-For", "1.1.1.1"), ("X-Forwarded-For", "198.51.100.7")], client=("10.0.0.1", 40000)),
        TRUSTED,
    )
    assert facts.ip == "198.51.100.7"


def test_ipv6_client_behind_ipv6_trusted_proxy() -> None:
    facts = Facts.from_scope(scope([("X-Forwarded-For", "2001:db8:9:9::1")], client=("fd00::1", 40000)), TRUSTED)
    assert facts.ip == "2001:db8:9:9::1"
    assert facts.prefix == "2001:db8:9:9::/64"


def test_forwarded_proto_and_host_are_honoured_from_a_trusted_peer() -> None:
    headers = [("Host", "internal:8080"), ("X-Forwarded-Proto", "HTTPS"), ("X-Forwarded-Host", "www.example.com")]
    facts = Facts.from_scope(scope(headers, client=("10.0.0.1", 40000)), TRUSTED)
    assert facts.scheme == "https"
    assert facts.host == "www.example.com"


def test_forwarded_proto_and_host_take_the_first_of_several_values() -> None:
    headers = [("X-Forwarded-Proto", "https, http"), ("X-Forwarded-Host", "www.example.com, internal")]
    facts = Facts.from_scope(scope(headers, client=("10.0.0.1", 40000)), TRUSTED)
    assert facts.scheme == "https"
    assert facts.host == "www.example.com"


def test_forwarded_proto_and_host_are_ignored_from_an_untrusted_peer() -> None:
    headers = [("Host", "example.com"), ("X-Forwarded-Proto", "https"), ("X-Forwarded-Host", "evil.example")]
    facts = Facts.from_scope(scope(headers, client=("203.0.113.9", 40000)), TRUSTED)
    assert facts.scheme == "http"
    assert facts.host == "example.com"


def test_listener_scheme_is_used_without_forwarded_proto() -> None:
    facts = Facts.from_scope(scope([("Host", "example.com")], client=("10.0.0.1", 40000), scheme="https"), TRUSTED)
    assert facts.scheme == "https"
    assert facts.host == "example.com"


def test_missing_client_is_an_unknown_untrusted_peer() -> None:
    facts = Facts.from_scope(scope([("X-Forwarded-For", "198.51.100.7")], client=None), TRUSTED)
    assert facts.peer == "0.0.0.0"
    assert facts.ip == "0.0.0.0"
    assert facts.peer_trusted is False
    assert facts.prefix == "0.0.0.0/24"


def test_scope_without_client_key_is_handled_like_a_missing_client() -> None:
    built = scope()
    del built["client"]
    facts = Facts.from_scope(built, NO_PROXIES)
    assert facts.peer == "0.0.0.0"


def test_the_raw_path_is_kept_as_sent_and_rebuilt_when_the_server_omits_it() -> None:
    """A Web Bot Auth signature covers @path as the client sent it: never the decoded path, never a bare "/"."""
    sent = Facts.from_scope(scope(path="/a b/é", raw_path=b"/a%20b/%C3%A9"), NO_PROXIES)
    assert (sent.path, sent.raw_path) == ("/a b/é", "/a%20b/%C3%A9")
    rebuilt = Facts.from_scope(scope(path="/a b/é;x=1"), NO_PROXIES)
    assert rebuilt.raw_path == "/a%20b/%C3%A9;x=1"
