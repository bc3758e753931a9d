"""Session-wide real services: one Redis, one nginx with the test fixtures, one WebSocket echo server behind it."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import settings

from tests.support.compiled import stale_extensions
from tests.support.gate_process import GateProcess, start_transparent_gate
from tests.support.nginx import TEST_LOCATIONS, Nginx, start_nginx
from tests.support.ports import free_port, stop, wait_for_port
from tests.support.redis_cluster import redis_cluster
from tests.support.redis_sentinel import redis_sentinel
from tests.support.redis_server import redis_server

FIXTURES = Path(__file__).parent / "data" / "site"

# The property tests draw the same examples on every run, so that a test fails for the change that breaks it and not
# for a lucky draw; `make fuzz` runs them with fresh random examples (--hypothesis-profile=explore) to find new cases.
settings.register_profile("repeatable", derandomize=True)
settings.register_profile("explore", derandomize=False)
settings.load_profile("repeatable")


def pytest_sessionstart(session: pytest.Session) -> None:
    stale = stale_extensions()
    if stale:
        pytest.exit(
            f"{len(stale)} compiled modules (first {stale[0].name}) are older than gate's sources: `make test` "
            "installs gate again, or `.venv/bin/pip install -e '.[test]'`",
            returncode=4,
        )


@pytest.fixture(scope="session")
def services_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("services")


@pytest.fixture(scope="session")
def redis_url(services_dir: Path) -> Iterator[str]:
    import os

    if os.environ.get("GATE_TEST_REDIS_URL"):
        yield os.environ["GATE_TEST_REDIS_URL"]
        return
    with redis_server(services_dir) as url:
        yield url


@pytest.fixture(scope="session")
def redis_cluster_url(services_dir: Path) -> Iterator[str]:
    """Three local redis-server nodes in one Redis Cluster."""
    directory = services_dir / "cluster"
    directory.mkdir(exist_ok=True)
    with redis_cluster(directory) as url:
        yield url


@pytest.fixture(scope="session")
def redis_sentinel_url(services_dir: Path) -> Iterator[str]:
    """A Redis primary behind a Sentinel that names it."""
    directory = services_dir / "sentinel"
    directory.mkdir(exist_ok=True)
    with redis_sentinel(directory) as url:
        yield url


@pytest.fixture(scope="session")
def websocket_echo(services_dir: Path) -> Iterator[int]:
    port = free_port()
    log = services_dir / "ws-echo.log"
    with log.open("wb") as output:
        process = subprocess.Popen(
            [sys.executable, "-m", "tests.support.ws_echo", str(port)], stdout=output, stderr=subprocess.STDOUT
        )
    try:
        wait_for_port("127.0.0.1", port, process, log)
        yield port
    finally:
        stop(process)


@pytest.fixture(scope="session")
def site_root(services_dir: Path) -> Path:
    """The fixture site plus a sparse 1 GiB file for streaming tests (sparse: costs no disk)."""
    root = services_dir / "site"
    subprocess.run(["cp", "-r", str(FIXTURES), str(root)], check=True)
    with (root / "big.bin").open("wb") as big:
        big.truncate(1 << 30)
    return root


@pytest.fixture(scope="session")
def nginx(services_dir: Path, site_root: Path, websocket_echo: int) -> Iterator[Nginx]:
    uploads = services_dir / "uploads"
    uploads.mkdir()
    locations = TEST_LOCATIONS.replace("{uploads}", str(uploads)).replace("{websocket_port}", str(websocket_echo))
    server = start_nginx(services_dir / "nginx", site_root, locations)
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def gate(services_dir: Path, nginx: Nginx) -> Iterator[GateProcess]:
    """A gate in front of the test nginx that allows everything: for the forwarding tests."""
    process = start_transparent_gate(services_dir / "gate", nginx.url)
    try:
        yield process
    finally:
        process.stop()
