"""Request heads that are too big, and requests that could be read two ways (smuggling), are refused by gate before
any rule or upstream sees them, with a status the client can read."""

from __future__ import annotations

import socket
import time

import pytest

from tests.support.gate_process import GateProcess

HEAD = b"GET /uri/head HTTP/1.1\r\nHost: x\r\nUser-Agent: curl/8.5.0\r\n"


def status_of(response: bytes) -> int:
    return int(response.split(b" ", 2)[1])


@pytest.mark.parametrize(
    ("extra", "status"),
    [
        (b"X-Big: " + b"a" * (1 << 20) + b"\r\n", 431),
        (b"".join(b"X-%d: v\r\n" % n for n in range(101)), 431),
        (b"Cookie: session=" + b"c" * 70_000 + b"\r\n", 431),
        (b"".join(b"Cookie: c%d=%s\r\n" % (n, b"v" * 4000) for n in range(20)), 431),
    ],
    ids=["one-huge-header", "too-many-headers", "huge-cookie", "many-big-cookies"],
)
def test_an_oversized_head_gets_431_and_reaches_nothing(gate: GateProcess, extra: bytes, status: int) -> None:
    response = gate.exchange(HEAD + extra + b"Connection: close\r\n\r\n")
    assert status_of(response) == status
    assert b"too large" in response
    assert gate.process.poll() is None


def test_an_overlong_target_gets_414(gate: GateProcess) -> None:
    response = gate.exchange(b"GET /uri/" + b"a" * 9000 + b" HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    assert status_of(response) == 414


def test_a_big_but_allowed_head_is_served(gate: GateProcess) -> None:
    # 24 KB in lines of 4 KB: well past what most servers take, within what the test nginx behind gate takes.
    headers = b"".join(b"X-Context-%d: %s\r\n" % (n, b"v" * 4000) for n in range(6))
    response = gate.exchange(HEAD + headers + b"Connection: close\r\n\r\n")
    assert status_of(response) == 200
    assert response.endswith(b"/uri/head")


SMUGGLED = b"GET /uri/smuggled HTTP/1.1\r\nHost: x\r\n\r\n"


@pytest.mark.parametrize(
    "framing",
    [
        b"Content-Length: %d\r\nTransfer-Encoding: chunked\r\n" % (len(SMUGGLED) + 5),
        b"Transfer-Encoding: chunked\r\nContent-Length: 5\r\n",
        b"Content-Length: 5\r\nContent-Length: %d\r\n" % (len(SMUGGLED) + 5),
        b"Content-Length: 5, 6\r\n",
        b"Content-Length: +5\r\n",
        b"Transfer-Encoding: xchunked\r\n",
        b"Transfer-Encoding : chunked\r\n",
        b"Transfer-Encoding: chunked, identity\r\n",
        b"Transfer-Encoding:\x0bchunked\r\n",
        b"Transfer-Encoding: chunked\r\n foo\r\n",
        b"X-Folded: a\r\n\tb\r\nContent-Length: 5\r\n",
        b"X-Bad: a\rb\r\nContent-Length: 5\r\n",
    ],
    ids=[
        "cl-then-te",
        "te-then-cl",
        "two-lengths",
        "length-list",
        "signed-length",
        "unknown-coding",
        "space-before-colon",
        "chunked-not-last",
        "vertical-tab",
        "folded-te",
        "obs-fold",
        "bare-cr",
    ],
)
def test_ambiguous_framing_is_refused_and_nothing_is_forwarded(gate: GateProcess, framing: bytes) -> None:
    # Were one reader to take the body as "0\r\n\r\n" and another as the smuggled request, the second request would
    # reach the upstream unchecked. gate refuses the exchange, and never reads the rest as a request of its own.
    # (Where the head was well-formed the first request may already be on its way, but gate frames the body it
    # forwards itself, so the upstream cannot be led to read a second request out of it.)
    body = b"0\r\n\r\n" + SMUGGLED
    request = b"POST /uri/framing HTTP/1.1\r\nHost: x\r\nUser-Agent: curl/8.5.0\r\n" + framing + b"\r\n" + body
    response = gate.exchange(request)
    assert status_of(response) == 400
    assert response.count(b"HTTP/1.1 ") == 1
    assert not gate.access_lines("/uri/smuggled", wait=0.2)


def test_a_bare_lf_request_is_refused(gate: GateProcess) -> None:
    assert status_of(gate.exchange(b"GET /uri/lf HTTP/1.1\nHost: x\n\n")) == 400


def test_a_flood_of_malformed_requests_is_counted_but_hardly_logged(gate: GateProcess) -> None:
    def logged() -> int:
        return sum(1 for line in gate.log_lines() if line["message"].startswith("Invalid HTTP request received."))

    before = (logged(), gate.metric("gate_client_errors_total", reason="malformed"))
    for _ in range(30):
        gate.exchange(b"GET / HTTP/1.1\r\nHost: x\r\nBad Header: y\r\n\r\n")
    assert gate.metric("gate_client_errors_total", reason="malformed") == before[1] + 30
    assert logged() - before[0] <= 1


def test_an_oversized_pipelined_head_never_lands_inside_the_response_in_progress(gate: GateProcess) -> None:
    with socket.create_connection((gate.host, gate.port), timeout=10) as connection:
        connection.sendall(b"GET /stall HTTP/1.1\r\nHost: x\r\nUser-Agent: curl/8.5.0\r\n\r\n")
        time.sleep(0.3)  # the response has started ("first"), the rest is 5 s away
        connection.sendall(b"GET /uri/next HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 70_000)
        received = b"".join(iter(lambda: connection.recv(65536), b""))
    assert received.startswith(b"HTTP/1.1 200 ")
    assert b"431" not in received and b"too large" not in received
