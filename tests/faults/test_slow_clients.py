"""Slow clients (slowloris heads, stalled uploads, downloads nobody reads) cannot hold gate's connections: each is
cut after --header-timeout or --client-timeout, an idle keep-alive connection after --keep-alive-timeout, past
--max-connections requests get a 503 at once, and other clients are served all the while."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from gate.connection import LINGER_SECONDS
from tests.support.gate_process import GateProcess, start_transparent_gate
from tests.support.nginx import Nginx

HEADER_TIMEOUT = 1.0
CLIENT_TIMEOUT = 1.5
KEEP_ALIVE_TIMEOUT = 2.0  # apart from the other two, and well below the default (5 s)
MAX_CONNECTIONS = 40
SLACK = 1.5  # scheduling on a loaded 2-core machine


@pytest.fixture(scope="module")
def strict_gate(tmp_path_factory: pytest.TempPathFactory, nginx: Nginx) -> Iterator[GateProcess]:
    process = start_transparent_gate(
        tmp_path_factory.mktemp("slow-clients"),
        nginx.url,
        "--header-timeout",
        str(HEADER_TIMEOUT),
        "--client-timeout",
        str(CLIENT_TIMEOUT),
        "--keep-alive-timeout",
        str(KEEP_ALIVE_TIMEOUT),
        "--max-connections",
        str(MAX_CONNECTIONS),
    )
    try:
        yield process
    finally:
        process.stop()


def connect(gate: GateProcess) -> socket.socket:
    return socket.create_connection((gate.host, gate.port), timeout=10)


def read_until_closed(connection: socket.socket, limit: int = 1 << 30) -> tuple[bytes, float]:
    """What the server sent before it closed (or reset) the connection, and when it closed, in seconds from now."""
    started = time.monotonic()
    received = bytearray()
    try:
        while len(received) < limit and (chunk := connection.recv(1 << 20)):
            received += chunk
    except ConnectionResetError:
        pass
    return bytes(received), time.monotonic() - started


def served_promptly(gate: GateProcess) -> float:
    started = time.monotonic()
    response = httpx.get(f"{gate.url}/uri/fast", headers={"user-agent": "curl/8.5.0"}, timeout=5)
    assert response.status_code == 200
    return time.monotonic() - started


def test_a_head_that_never_ends_gets_408_in_time(strict_gate: GateProcess) -> None:
    counted = strict_gate.metric("gate_client_errors_total", reason="head-timeout")
    with connect(strict_gate) as connection:
        connection.sendall(b"GET /uri/slow HTTP/1.1\r\nHost: x\r\nUser-Agent: curl/8.5.0\r\n")
        response, waited = read_until_closed(connection)
    assert response.startswith(b"HTTP/1.1 408 ")
    assert HEADER_TIMEOUT - 0.2 < waited < HEADER_TIMEOUT + SLACK
    assert strict_gate.metric("gate_client_errors_total", reason="head-timeout") == counted + 1


def test_a_client_that_connects_and_says_nothing_is_dropped(strict_gate: GateProcess) -> None:
    with connect(strict_gate) as connection:
        response, waited = read_until_closed(connection)
    assert response == b""
    assert waited < HEADER_TIMEOUT + SLACK


def test_an_idle_keep_alive_connection_is_closed_after_the_keep_alive_timeout(strict_gate: GateProcess) -> None:
    with connect(strict_gate) as connection:
        connection.sendall(b"GET /uri/fast HTTP/1.1\r\nHost: x\r\nUser-Agent: curl/8.5.0\r\n\r\n")
        response, waited = read_until_closed(connection)
    assert response.startswith(b"HTTP/1.1 200 ")
    assert response.count(b"HTTP/1.1 ") == 1
    assert KEEP_ALIVE_TIMEOUT - 0.2 < waited < KEEP_ALIVE_TIMEOUT + SLACK


def test_trickling_heads_are_cut_and_never_keep_others_out(strict_gate: GateProcess) -> None:
    # slowloris: every connection sends a byte often enough to beat any per-read timer, and never ends its head.
    connections = [connect(strict_gate) for _ in range(MAX_CONNECTIONS // 2)]
    closed_after: list[float] = []
    stop = threading.Event()

    def trickle() -> None:
        started = time.monotonic()
        open_ones = list(connections)
        for connection in open_ones:
            connection.sendall(b"GET /uri/loris HTTP/1.1\r\nHost: x\r\n")
        while open_ones and not stop.is_set():
            for connection in list(open_ones):
                try:
                    connection.sendall(b"X")
                    answered = connection.recv(4096, socket.MSG_DONTWAIT)
                except BlockingIOError:
                    continue
                except OSError:
                    answered = b""
                assert answered == b"" or answered.startswith(b"HTTP/1.1 408 ")
                open_ones.remove(connection)
                closed_after.append(time.monotonic() - started)
            time.sleep(0.1)

    trickler = threading.Thread(target=trickle)
    trickler.start()
    try:
        time.sleep(0.3)
        assert served_promptly(strict_gate) < 0.5
        trickler.join(timeout=HEADER_TIMEOUT + SLACK + 1)
    finally:
        stop.set()
        trickler.join()
        for connection in connections:
            connection.close()
    assert len(closed_after) == len(connections)
    assert max(closed_after) < HEADER_TIMEOUT + SLACK


def test_past_the_connection_limit_requests_get_503_at_once_then_service_resumes(strict_gate: GateProcess) -> None:
    idle = [connect(strict_gate) for _ in range(MAX_CONNECTIONS)]
    try:
        time.sleep(0.1)
        with connect(strict_gate) as connection:
            connection.sendall(b"GET /uri/over HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            response, waited = read_until_closed(connection)
        assert response.startswith(b"HTTP/1.1 503 ")
        assert waited < 0.5
        assert strict_gate.metric("gate_client_errors_total", reason="over-connections") >= 1
    finally:
        for connection in idle:
            connection.close()
    deadline = time.monotonic() + 5
    while httpx.get(f"{strict_gate.url}/uri/again", timeout=5).status_code == 503:
        assert time.monotonic() < deadline, "the limit did not free up after the idle connections closed"
        time.sleep(0.1)


def test_a_stalled_upload_is_cut_and_gate_serves_on(strict_gate: GateProcess) -> None:
    with connect(strict_gate) as connection:
        connection.sendall(
            b"PUT /upload/stalled.bin HTTP/1.1\r\nHost: x\r\nUser-Agent: curl/8.5.0\r\n"
            b"Content-Length: 1000000\r\n\r\n" + b"u" * 1000
        )
        response, waited = read_until_closed(connection)
    assert waited < CLIENT_TIMEOUT + SLACK  # not the upstream's 60 s
    assert b" 201 " not in response[:20]
    assert strict_gate.metric("gate_client_errors_total", reason="upload-stalled") >= 1
    assert served_promptly(strict_gate) < 0.5


def test_a_download_nobody_reads_is_dropped(strict_gate: GateProcess, site_root: Path) -> None:
    with connect(strict_gate) as connection:
        connection.sendall(b"GET /big.bin HTTP/1.1\r\nHost: x\r\nUser-Agent: curl/8.5.0\r\n\r\n")
        time.sleep(CLIENT_TIMEOUT + SLACK)  # the socket buffers fill up, then gate waits for a reader in vain
        received, _ = read_until_closed(connection, limit=256 << 20)
    # Only what sat in the buffers when gate gave up, not the 1 GiB file.
    assert received.startswith(b"HTTP/1.1 200 ")
    assert len(received) < 64 << 20
    assert strict_gate.metric("gate_client_errors_total", reason="download-stalled") >= 1
    assert served_promptly(strict_gate) < 0.5


def test_an_upload_answered_before_its_end_cannot_keep_the_connection(strict_gate: GateProcess) -> None:
    # gate answers its own 404 without reading the body; the client then trickles and stops. Kept open, the
    # connection would have no timer left at all.
    with connect(strict_gate) as connection:
        connection.sendall(
            b"POST /.gate/nothing-here HTTP/1.1\r\nHost: x\r\nContent-Length: 1000000000000\r\n\r\n" + b"u" * 10
        )
        time.sleep(0.3)
        connection.sendall(b"u")
        response, waited = read_until_closed(connection)
    assert response.startswith(b"HTTP/1.1 404 ")
    assert waited < LINGER_SECONDS + SLACK
