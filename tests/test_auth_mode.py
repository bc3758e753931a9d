"""--mode auth: the decision endpoint for nginx auth_request, Traefik forwardAuth and Caddy forward_auth."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.support.gate_process import GateProcess, start_gate
from tests.support.ports import free_port


@pytest.fixture(scope="module")
def auth_gate(tmp_path_factory: pytest.TempPathFactory) -> Iterator[GateProcess]:
    # In auth mode gate forwards nothing: the upstream is only probed by /readyz.
    process = start_gate(
        tmp_path_factory.mktemp("auth"),
        f"http://127.0.0.1:{free_port()}",
        "--mode",
        "auth",
        "--trusted-proxy",
        "127.0.0.1/32",
    )
    yield process
    process.stop()


def test_the_decision_is_a_status_and_headers(auth_gate: GateProcess) -> None:
    response = httpx.get(
        auth_gate.url + "/.gate/auth",
        headers={
            "X-Original-URI": "/essays/one.html?page=2",
            "X-Original-Method": "GET",
            "X-Real-IP": "203.0.113.5",
            "User-Agent": "curl/8.5.0",
        },
    )
    assert response.status_code == 401  # curl is challenged by the shipped rules
    assert response.content == b""
    assert response.headers["x-gate-action"] == "challenge"
    assert response.headers["x-gate-rule"] == "libraries-and-headless-browsers"
    line = auth_gate.access_lines("/essays/one.html")[-1]
    assert line["ip"] == "203.0.113.5"
    assert line["method"] == "GET"
    assert line["agent_class"] == "http-library"


def test_traefik_and_caddy_headers_describe_the_original_request(auth_gate: GateProcess) -> None:
    response = httpx.get(
        auth_gate.url + "/.gate/auth",
        headers={
            "X-Forwarded-Uri": "/feed%20x.xml",
            "X-Forwarded-Method": "post",
            "X-Forwarded-Host": "blog.test",
            "X-Forwarded-For": "198.51.100.23",
        },
    )
    assert response.status_code == 200
    assert "x-accel-expires" not in response.headers  # without --auth-cache nginx asks again every time
    line = auth_gate.access_lines("/feed x.xml")[-1]
    assert (line["method"], line["host"], line["ip"]) == ("POST", "blog.test", "198.51.100.23")


def test_other_paths_are_not_proxied_in_auth_mode(auth_gate: GateProcess) -> None:
    assert httpx.get(auth_gate.url + "/essays/one.html").status_code == 404


def test_the_challenge_page_is_served_for_the_front_proxys_error_page(auth_gate: GateProcess) -> None:
    # nginx: error_page 401 = /.gate/challenge; with proxy_set_header X-Original-URI $request_uri
    response = httpx.get(
        auth_gate.url + "/.gate/challenge",
        headers={"X-Original-URI": "/essays/one.html?page=2", "X-Real-IP": "203.0.113.5", "User-Agent": "curl/8.5.0"},
    )
    assert response.status_code == 200
    assert "gate-challenge" in response.text
    assert '"difficulty": 20' in response.text or '"difficulty":20' in response.text


def test_a_dot_segment_path_is_denied_in_auth_mode(auth_gate: GateProcess) -> None:
    response = httpx.get(auth_gate.url + "/.gate/auth", headers={"X-Original-URI": "/feed/../essays/one.html"})
    assert response.status_code == 403


@pytest.mark.parametrize(("flags", "reusable"), [((), True), (("--dry-run",), False)])
def test_with_auth_cache_only_a_let_through_is_marked_reusable_and_never_in_a_dry_run(
    tmp_path: Path, flags: tuple[str, ...], reusable: bool
) -> None:
    process = start_gate(
        tmp_path,
        f"http://127.0.0.1:{free_port()}",
        *("--mode", "auth", "--trusted-proxy", "127.0.0.1/32", "--auth-cache", "3", *flags),
    )
    try:
        allowed = httpx.get(process.url + "/.gate/auth", headers={"X-Original-URI": "/feed.xml", "User-Agent": "curl"})
        challenged = httpx.get(process.url + "/.gate/auth", headers={"X-Original-URI": "/", "User-Agent": "curl"})
    finally:
        process.stop()
    assert allowed.status_code == 200  # the shipped feeds rule lets everyone through
    assert allowed.headers.get("x-accel-expires") == ("3" if reusable else None)
    assert "x-accel-expires" not in challenged.headers
    if reusable:  # nginx reads X-Accel-Expires only ahead of Cache-Control: no-store
        names = [name.lower() for name, _ in allowed.headers.raw]
        assert names.index(b"x-accel-expires") < names.index(b"cache-control")
