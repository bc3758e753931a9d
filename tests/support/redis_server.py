"""A real Redis for tests: GATE_TEST_REDIS_URL when set, else a private redis-server on a free port."""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from tests.support.ports import free_port, stop, wait_for_port

NOT_INSTALLED = "redis-server is not installed: `make test` installs it (apt-get install redis-server)"


def redis_binary(name: str = "redis-server") -> str:
    binary = shutil.which(name)
    if binary is None:
        raise RuntimeError(NOT_INSTALLED)
    return binary


def redis_cli() -> str:
    return redis_binary("redis-cli")


def start_redis_server(directory: Path, port: int, *options: str) -> subprocess.Popen[bytes]:
    """A redis-server on 127.0.0.1:port with extra `options`, answering when this returns; the caller stops it."""
    log = directory / f"redis-{port}.log"
    defaults = ["--bind", "127.0.0.1", "--port", str(port), "--save", "", "--appendonly", "no"]
    process = subprocess.Popen(
        [redis_binary(), *defaults, "--dir", str(directory), "--logfile", str(log), *options],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.STDOUT,
    )
    try:
        wait_for_port("127.0.0.1", port, process, log)
    except BaseException:
        stop(process)
        raise
    return process


@contextmanager
def redis_server(directory: Path) -> Iterator[str]:
    port = free_port()
    process = start_redis_server(directory, port)
    try:
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        stop(process)
