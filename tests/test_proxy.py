"""Forwarding through a real gate process to a real nginx: bodies, headers, client addresses, WebSockets, errors."""

from __future__ import annotations

import hashlib
import os
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from websockets.sync.client import connect as websocket_connect

from tests.support.gate_process import GateProcess, start_transparent_gate
from tests.support.nginx import Nginx
from tests.support.ports import free_port

MIB = 1 << 20


def echoed(response: httpx.Response) -> dict[str, str]:
    """The request headers nginx's /headers location saw, as name -> value."""
    return dict(line.split("=", 1) for line in response.text.splitlines())


@pytest.fixture
def own_gate(tmp_path: Path, nginx: Nginx) -> Iterator[list[GateProcess]]:
    """Gates a test starts with its own options; all stopped afterwards."""
    started: list[GateProcess] = []
    yield started
    for process in started:
        process.stop()


def test_serves_the_page_byte_for_byte(gate: GateProcess, site_root: Path) -> None:
    response = httpx.get(gate.url + "/page.html")
    assert response.status_code == 200
    assert response.content == (site_root / "page.html").read_bytes()
    assert response.headers["content-type"] == "text/html"
    assert "uvicorn" not in response.headers.get("server", "")


@pytest.mark.parametrize(
    "target",
    [
        b"/uri/a%2Fb?x=%2f%2F&y=a+b&z=%E2%82%AC",
        b"/uri/caf%C3%A9/?q=1&q=2&&empty=&flag",
        b"/uri/%7euser/?%zz=bad-escape-kept&semi=a;b",
        b"/uri/sp%20ace?redirect=https%3A%2F%2Fexample.org%2F%3Fa%3Db",
    ],
)
def test_path_and_query_reach_the_upstream_byte_exact(gate: GateProcess, target: bytes) -> None:
    response = gate.exchange(b"GET " + target + b" HTTP/1.1\r\nHost: site.test\r\nConnection: close\r\n\r\n")
    head, _, body = response.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200")
    assert body == target


def test_repeated_set_cookie_headers_are_kept(gate: GateProcess) -> None:
    response = httpx.get(gate.url + "/cookies")
    assert response.headers.get_list("set-cookie") == ["a=1; Path=/", "b=2; Path=/"]


def test_hop_by_hop_headers_are_not_forwarded(gate: GateProcess) -> None:
    response = httpx.get(
        gate.url + "/headers",
        headers={"Connection": "keep-alive, X-Foo", "X-Foo": "secret", "Keep-Alive": "timeout=5"},
    )
    seen = echoed(response)
    assert seen["foo"] == ""  # named in Connection, so hop-by-hop
    assert seen["keepalive"] == ""


def test_forwarding_client_adds_no_headers_of_its_own(gate: GateProcess) -> None:
    request = b"GET /headers HTTP/1.1\r\nHost: site.test\r\nConnection: close\r\n\r\n"
    seen = dict(line.split("=", 1) for line in gate.exchange(request).partition(b"\r\n\r\n")[2].decode().splitlines())
    assert seen["ua"] == ""
    assert seen["accept"] == ""


def test_client_host_is_preserved_and_forwarded_headers_set(gate: GateProcess) -> None:
    seen = echoed(httpx.get(gate.url + "/headers", headers={"Host": "blog.example"}))
    assert seen["host"] == "blog.example"
    assert seen["xhost"] == "blog.example"
    assert seen["proto"] == "http"
    assert seen["real"] == "127.0.0.1"
    assert seen["xff"] == "127.0.0.1"


def test_host_can_be_rewritten_to_the_upstreams(own_gate: list[GateProcess], tmp_path: Path, nginx: Nginx) -> None:
    own_gate.append(start_transparent_gate(tmp_path, nginx.url, "--preserve-host", "false"))
    seen = echoed(httpx.get(own_gate[0].url + "/headers", headers={"Host": "blog.example"}))
    assert seen["host"] == f"127.0.0.1:{nginx.port}"
    assert seen["xhost"] == "blog.example"


def test_untrusted_peer_cannot_forge_its_address(gate: GateProcess) -> None:
    seen = echoed(
        httpx.get(
            gate.url + "/headers/untrusted",
            headers={
                "X-Forwarded-For": "203.0.113.9",
                "X-Real-IP": "203.0.113.9",
                "X-Forwarded-Proto": "https",
                "Forwarded": "for=203.0.113.9",
                "True-Client-IP": "203.0.113.9",
            },
        )
    )
    assert seen["real"] == "127.0.0.1"
    assert seen["xff"] == "127.0.0.1"  # the forged chain is dropped, not passed on
    assert seen["proto"] == "http"
    assert seen["forwarded"] == "" and seen["trueclient"] == ""  # other address headers are dropped too
    assert gate.access_lines("/headers/untrusted")[-1]["ip"] == "127.0.0.1"


def test_trusted_proxy_forwarded_for_gives_the_client(
    own_gate: list[GateProcess], tmp_path: Path, nginx: Nginx
) -> None:
    own_gate.append(start_transparent_gate(tmp_path, nginx.url, "--trusted-proxy", "127.0.0.0/8"))
    trusted = own_gate[0]
    seen = echoed(
        httpx.get(
            trusted.url + "/headers",
            headers={"X-Forwarded-For": "198.51.100.7, 203.0.113.9", "X-Forwarded-Proto": "https"},
        )
    )
    assert seen["real"] == "203.0.113.9"  # rightmost untrusted hop; the left one could be forged
    assert seen["xff"] == "198.51.100.7, 203.0.113.9, 127.0.0.1"
    assert seen["proto"] == "https"
    line = trusted.access_lines("/headers")[-1]
    assert line["ip"] == "203.0.113.9"


def test_ipv6_client(own_gate: list[GateProcess], tmp_path: Path, nginx: Nginx) -> None:
    own_gate.append(start_transparent_gate(tmp_path, nginx.url, host="::1"))
    seen = echoed(httpx.get(own_gate[0].url + "/headers"))
    assert seen["real"] == "::1"
    assert own_gate[0].access_lines("/headers")[-1]["ip"] == "::1"


def test_large_download_streams_with_bounded_memory(gate: GateProcess) -> None:
    baseline = gate.rss_kib()
    received = 0
    with httpx.stream("GET", gate.url + "/big.bin", timeout=60) as response:
        assert response.status_code == 200
        assert response.headers["content-length"] == str(1 << 30)
        for chunk in response.iter_raw(1 << 20):
            received += len(chunk)
    assert received == 1 << 30
    grown_mib = (gate.peak_rss_kib() - baseline) / 1024
    assert grown_mib < 64, f"gate's peak memory grew by {grown_mib:.0f} MiB streaming 1 GiB"


def test_large_upload_streams_with_bounded_memory(gate: GateProcess, services_dir: Path) -> None:
    size = 512 * MIB
    block = os.urandom(MIB)
    digest = hashlib.sha256()

    def body() -> Iterator[bytes]:
        for _ in range(size // MIB):
            digest.update(block)
            yield block

    baseline = gate.rss_kib()
    response = httpx.put(gate.url + "/upload/big.bin", content=body(), timeout=120)
    assert response.status_code in (201, 204)
    stored = services_dir / "uploads" / "upload" / "big.bin"
    assert stored.stat().st_size == size
    assert hashlib.sha256(stored.read_bytes()).hexdigest() == digest.hexdigest()
    stored.unlink()
    grown_mib = (gate.peak_rss_kib() - baseline) / 1024
    assert grown_mib < 64, f"gate's peak memory grew by {grown_mib:.0f} MiB streaming a 512 MiB upload"


def test_upload_with_content_length_is_forwarded_intact(gate: GateProcess, services_dir: Path) -> None:
    payload = os.urandom(3 * MIB + 17)
    response = httpx.put(gate.url + "/upload/small.bin", content=payload)
    assert response.status_code in (201, 204)
    assert (services_dir / "uploads" / "upload" / "small.bin").read_bytes() == payload


def test_websocket_echo_through_gate(gate: GateProcess) -> None:
    url = gate.url.replace("http://", "ws://") + "/ws"
    with websocket_connect(url, subprotocols=["echo"], additional_headers={"Cookie": "session=abc"}) as websocket:  # type: ignore[list-item]
        assert websocket.subprotocol == "echo"
        websocket.send("hello")
        assert websocket.recv(timeout=5) == "hello"
        websocket.send(b"\x00\x01binary")
        assert websocket.recv(timeout=5) == b"\x00\x01binary"
        websocket.send("cookie?")
        assert websocket.recv(timeout=5) == "session=abc"


def test_refused_upstream_gives_502_at_once(own_gate: list[GateProcess], tmp_path: Path) -> None:
    own_gate.append(start_transparent_gate(tmp_path, f"http://127.0.0.1:{free_port()}"))
    started = time.monotonic()
    response = httpx.get(own_gate[0].url + "/page.html", timeout=10)
    assert response.status_code == 502
    assert time.monotonic() - started < 1.0
    assert "Bad gateway" in response.text
    assert own_gate[0].access_lines("/page.html")[-1]["error"] == "connect"


def test_slow_upstream_gives_504_after_the_configured_timeout(
    own_gate: list[GateProcess], tmp_path: Path, nginx: Nginx
) -> None:
    own_gate.append(start_transparent_gate(tmp_path, nginx.url, "--upstream-timeout", "1"))
    started = time.monotonic()
    response = httpx.get(own_gate[0].url + "/slow", timeout=10)
    waited = time.monotonic() - started
    assert response.status_code == 504
    assert 1.0 <= waited < 2.0
    assert own_gate[0].access_lines("/slow")[-1]["error"] == "timeout"


def test_upstream_stalling_mid_body_cuts_the_response_short(
    own_gate: list[GateProcess], tmp_path: Path, nginx: Nginx
) -> None:
    own_gate.append(start_transparent_gate(tmp_path, nginx.url, "--upstream-timeout", "1"))
    started = time.monotonic()
    with pytest.raises(httpx.RemoteProtocolError):  # a truncated body must never look complete
        httpx.get(own_gate[0].url + "/stall", timeout=10)
    assert time.monotonic() - started < 3.0
    assert own_gate[0].access_lines("/stall")[-1]["error"] == "aborted"


def test_sigterm_drains_in_flight_requests(own_gate: list[GateProcess], tmp_path: Path, nginx: Nginx) -> None:
    own_gate.append(start_transparent_gate(tmp_path, nginx.url))
    draining = own_gate[0]
    result: dict[str, httpx.Response] = {}
    request = threading.Thread(target=lambda: result.setdefault("slow", httpx.get(draining.url + "/slow", timeout=10)))
    request.start()
    time.sleep(0.5)
    draining.process.terminate()
    request.join(timeout=10)
    assert result["slow"].status_code == 200
    assert result["slow"].text == "late\n"
    assert draining.process.wait(timeout=10) == 0
    with pytest.raises(httpx.ConnectError):
        httpx.get(draining.url + "/page.html")


def test_websocket_refused_by_the_upstream_is_refused_to_the_client(gate: GateProcess) -> None:
    from websockets.exceptions import InvalidStatus

    with pytest.raises(InvalidStatus):  # nginx answers 404, not 101: no tunnel is opened
        websocket_connect(gate.url.replace("http://", "ws://") + "/no-websocket-here", open_timeout=5)
    assert gate.access_lines("/no-websocket-here")[-1]["status"] == 502
