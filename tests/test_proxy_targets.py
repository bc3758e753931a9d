"""What the forwarder sends upstream, as pure functions: request targets and header filtering."""

from __future__ import annotations

import pytest

from gate.proxy import connection_tokens, request_target, response_headers


@pytest.mark.parametrize(
    ("raw_path", "query", "expected"),
    [
        (b"/a%2Fb", b"x=%2f", "/a%2Fb?x=%2f"),
        (b"/", b"", "/"),
        (b"/caf\xc3\xa9", b"q=\xe2\x82\xac", "/caf%C3%A9?q=%E2%82%AC"),  # raw non-ASCII is percent-encoded, not mangled
    ],
)
def test_origin_form_targets_pass_byte_exact(raw_path: bytes, query: bytes, expected: str) -> None:
    assert request_target({"raw_path": raw_path, "path": "", "query_string": query}) == expected


@pytest.mark.parametrize("raw_path", [b"*", b"@evil.example/", b"evil.example/path", b""])
def test_targets_that_could_change_the_upstream_host_are_refused(raw_path: bytes) -> None:
    # Glued onto "http://upstream", "@evil.example/" would send the request to another host.
    assert request_target({"raw_path": raw_path, "path": "x", "query_string": b""}) is None


def test_headers_named_in_connection_are_hop_by_hop() -> None:
    headers = [(b"Connection", b"keep-alive, X-Secret , close"), (b"x-secret", b"1"), (b"x-kept", b"2")]
    assert connection_tokens(headers) == frozenset({b"keep-alive", b"x-secret", b"close"})


def test_response_headers_drop_hop_by_hop_and_keep_repeats() -> None:
    raw = (
        (b"Set-Cookie", b"a=1"),
        (b"Transfer-Encoding", b"chunked"),
        (b"Connection", b"X-Internal"),
        (b"X-Internal", b"debug"),
        (b"Set-Cookie", b"b=2"),
        (b"Content-Type", b"text/html"),
    )
    assert response_headers(raw) == [(b"set-cookie", b"a=1"), (b"set-cookie", b"b=2"), (b"content-type", b"text/html")]
