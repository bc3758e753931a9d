"""Hostile or broken requests get a decision or a clear 4xx from a running gate: never a 500, never a crash."""

from __future__ import annotations

import pytest

from tests.support.gate_process import GateProcess


def status_of(response: bytes) -> int:
    return int(response.split(b" ", 2)[1])


@pytest.mark.parametrize(
    "request_bytes",
    [
        b"GET /uri/a HTTP/1.1\r\nHost: x\r\nUser-Agent: \xff\xfe\x80 caf\xe9\r\nConnection: close\r\n\r\n",
        b"GET /uri/a HTTP/1.1\r\nHost: x\r\nUser-Agent: " + b"A" * 60000 + b"\r\nConnection: close\r\n\r\n",
        b'GET /uri/a HTTP/1.1\r\nHost: x\r\nSec-CH-UA: "\x01\x02";v="\xff"\r\nConnection: close\r\n\r\n',
        b"GET /uri/a HTTP/1.1\r\nHost: x\r\nX-Forwarded-For: not-an-ip, ::::, 999.1.1.1\r\nConnection: close\r\n\r\n",
        b"GET /uri/%00%ff%c0%af/..%2f..%2fetc HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
        b"GET /uri/a?%zz=%&&==&a=\xff HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
        b"GET /uri/a HTTP/1.1\r\nHost: [::1\r\nCookie: ;;;=;\r\nConnection: close\r\n\r\n",
        b"GET /uri/a HTTP/1.0\r\n\r\n",
        b"BREW /uri/a HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
        b"GET /uri/a HTTP/1.1\r\nHost: x\r\nUser-Agent: a\r\nUser-Agent: b\r\nAccept: x\r\nAccept: y\r\n"
        b"Connection: close\r\n\r\n",
    ],
    ids=[
        "non-ascii-ua",
        "huge-ua",
        "control-chars",
        "garbage-xff",
        "nasty-path",
        "nasty-query",
        "odd-host",
        "http-1.0-no-host",
        "unknown-method",
        "duplicates",
    ],
)
def test_never_a_server_error(gate: GateProcess, request_bytes: bytes) -> None:
    status = status_of(gate.exchange(request_bytes))
    assert status < 500, status
    assert gate.process.poll() is None


def test_a_malformed_request_line_is_a_400(gate: GateProcess) -> None:
    assert status_of(gate.exchange(b"GET \x00 nonsense\r\n\r\n")) == 400


@pytest.mark.parametrize(
    "path",
    [
        b"/feed/../essays/x",
        b"/.well-known/%2e%2e/essays/x",
        b"/.well-known/%2E%2E/x",
        b"/a/./b",
        b"/a/.%2e/b",
        b"/feed/..;/essays/x",  # path parameters: Tomcat and Spring resolve this to /essays/x
        b"/feed/..;jsessionid=1/essays/x",
        b"/feed/.%3B/x",
    ],
)
def test_dot_segments_are_refused_before_any_rule_sees_them(gate: GateProcess, path: bytes) -> None:
    # The upstream would resolve them after gate matched the path: /feed/../essays/ is no feed.
    assert status_of(gate.exchange(b"GET " + path + b" HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")) == 400
