"""Path tricks against a rule that opens `/.well-known/**` (and gate's own `/.gate/**`) to a client every other path
is denied to: dot segments plain, encoded, double-encoded and behind `;`, encoded slashes and backslashes, doubled
slashes, mixed case, trailing dots, NUL. In proxy mode and in auth mode (where nginx serves what gate allowed), each
is refused, or what the upstream resolves is a path under `/.well-known/`: the open rule never leads elsewhere."""

from __future__ import annotations

import socket
from collections.abc import Iterator

import httpx
import pytest

from tests.support.gate_process import AUTH_MODE, GateProcess, started_gates
from tests.support.recording import ANSWER, RecordingUpstream

CURL = "curl/8.5.0"
RULES = """
agents: [shipped:agents/*.yaml]
rules:
  - {name: open-to-all, match: {path: [/.well-known/**, /.gate/**]}, action: allow}
  - {name: no-scripts, match: {agent_class: [http-library]}, action: deny}
default: {action: allow}
"""
OPEN = "/.well-known/"
TRICKS = [
    b"/.well-known/../secret",
    b"/.well-known/%2e%2e/secret",
    b"/.well-known/%2E%2E/secret",
    b"/.well-known/.%2e/secret",
    b"/.well-known/%252e%252e/secret",
    b"/.well-known%2f..%2fsecret",
    b"/.well-known/..%2fsecret",
    b"/.well-known/..%252fsecret",
    b"/.well-known/..%5csecret",
    b"/.well-known/..\\secret",
    b"/.well-known\\..\\secret",
    b"/.well-known/x/..",
    b"/.well-known/x/%2e%2e",
    b"/.well-known/x/../../secret",
    b"/.well-known//../secret",
    b"/.well-known/./../secret",
    b"//.well-known/x",
    b"//.well-known/../secret",
    b"/./.well-known/x",
    b"/.well-known;/x",
    b"/.well-known/..;/secret",
    b"/.well-known/..;x=1/secret",
    b"/.well-known/x;/../../secret",
    b"/secret;/.well-known/x",
    b"/secret/.well-known/x",
    b"/.Well-Known/x",
    b"/.WELL-KNOWN/x",
    b"/.well-known./x",
    b"/.well-known%2e/x",
    b"/.well-known%00/x",
    b"/.well-known/%00/../secret",
    b"/.well-known/x%00",
    b"/.well-known/%c0%ae%c0%ae/secret",
    b"/.well-known/%u002e%u002e/secret",
    b"/.well-known/x?/../../secret",
    b"/.well-known/x#/../../secret",
    b"/.gate/../secret",
    b"/.gate/%2e%2e/secret",
    b"/.gate/static/../../secret",
    b"/.gate%2f..%2fsecret",
    b"/.Gate/x",
]


def resolved_inside(uri: str) -> bool:
    return uri.startswith(OPEN)


def status_and_body(raw: bytes) -> tuple[int, str]:
    head, _, body = raw.partition(b"\r\n\r\n")
    return int(head.split(b" ", 2)[1]), body.decode("latin-1")


def request(target: bytes, *headers: bytes) -> bytes:
    lines = [b"GET " + target + b" HTTP/1.1", b"Host: site.example", b"User-Agent: " + CURL.encode(), *headers]
    return b"\r\n".join([*lines, b"Connection: close", b"", b""])


def exchange(url: str, data: bytes) -> bytes:
    """Bytes exactly as given to a server at `url`, and its whole answer."""
    host, port = url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=10) as connection:
        connection.sendall(data)
        return b"".join(iter(lambda: connection.recv(65536), b""))


@pytest.fixture(scope="module")
def gates(tmp_path_factory: pytest.TempPathFactory, upstream: RecordingUpstream) -> Iterator[dict[str, GateProcess]]:
    with started_gates(tmp_path_factory.mktemp("paths"), upstream.url, RULES, proxy=(), auth=AUTH_MODE) as gates:
        yield gates


def test_the_open_path_is_open_and_others_are_closed_to_the_client(
    gates: dict[str, GateProcess], upstream: RecordingUpstream
) -> None:
    proxy, auth = gates["proxy"], gates["auth"]
    assert status_and_body(proxy.exchange(request(b"/.well-known/x"))) == (200, ANSWER + "/.well-known/x")
    assert status_and_body(proxy.exchange(request(b"/secret")))[0] == 403
    decide = auth.url + "/.gate/auth"
    assert httpx.get(decide, headers={"X-Original-URI": "/.well-known/x", "User-Agent": CURL}).status_code == 200
    assert httpx.get(decide, headers={"X-Original-URI": "/secret", "User-Agent": CURL}).status_code == 403


@pytest.mark.parametrize("target", TRICKS, ids=[trick.decode("latin-1") for trick in TRICKS])
def test_in_proxy_mode_a_trick_is_refused_or_the_upstream_resolves_an_open_path(
    gates: dict[str, GateProcess], upstream: RecordingUpstream, target: bytes
) -> None:
    before = len(upstream.seen())
    status, body = status_and_body(gates["proxy"].exchange(request(target)))
    resolved = [seen.uri for seen in upstream.seen()[before:] if seen.uri]  # nginx resolves no malformed request
    assert all(resolved_inside(uri) for uri in resolved), resolved
    if body.startswith(ANSWER):
        assert resolved_inside(body.removeprefix(ANSWER)), body
    else:
        assert 400 <= status < 500, status


@pytest.mark.parametrize("target", TRICKS, ids=[trick.decode("latin-1") for trick in TRICKS])
def test_in_auth_mode_gate_allows_a_trick_only_where_nginx_resolves_an_open_path(
    gates: dict[str, GateProcess], upstream: RecordingUpstream, target: bytes
) -> None:
    """nginx's auth_request sends the raw $request_uri; nginx then serves its own normalised $uri."""
    decision, _ = status_and_body(gates["auth"].exchange(request(b"/.gate/auth", b"X-Original-URI: " + target)))
    assert decision in (200, 403)
    if decision == 200:
        status, body = status_and_body(exchange(upstream.url, request(target)))
        if body.startswith(ANSWER):
            assert resolved_inside(body.removeprefix(ANSWER)), body
        else:
            assert 400 <= status < 500, status
