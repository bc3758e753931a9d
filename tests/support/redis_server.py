"""A real Redis for tests: GATE_TEST_REDIS_URL when set, else a private redis-server on a free port."""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from tests.support.ports import free_port, stop, wait_for_port


def start_redis_server(directory: Path, port: int) -> subprocess.Popen[bytes]:
    """A redis-server on 127.0.0.1:port, answering when this returns; the caller stops it."""
    binary = shutil.which("redis-server")
    if binary is None:
        raise RuntimeError("redis-server is not installed: `make test` installs it (apt-get install redis-server)")
    log = directory / f"redis-{port}.log"
    options = ["--bind", "127.0.0.1", "--port", str(port), "--save", "", "--appendonly", "no"]
    process = subprocess.Popen(
        [binary, *options, "--dir", str(directory), "--logfile", str(log)],
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
