"""A real Redis Sentinel for tests: a private redis-server master watched by one sentinel, both on free ports."""

from __future__ import annotations

import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from tests.support.ports import free_port, stop, wait_for_port
from tests.support.redis_server import redis_binary, redis_cli, start_redis_server

MASTER_NAME = "gate-primary"


@contextmanager
def redis_sentinel(directory: Path) -> Iterator[str]:
    server, cli = redis_binary(), redis_cli()
    master_port = free_port()
    processes: list[subprocess.Popen[bytes]] = []
    try:
        processes.append(start_redis_server(directory, master_port))

        sentinel_port = free_port()
        sentinel_log = directory / "sentinel.log"
        config = directory / "sentinel.conf"  # sentinel rewrites its config file, so it lives in the writable directory
        config.write_text(
            f"port {sentinel_port}\n"
            "bind 127.0.0.1\n"
            f"sentinel monitor {MASTER_NAME} 127.0.0.1 {master_port} 1\n"
            f"sentinel down-after-milliseconds {MASTER_NAME} 2000\n"
            f'dir "{directory}"\n'
            f'logfile "{sentinel_log}"\n'
        )
        sentinel = subprocess.Popen(
            [server, str(config), "--sentinel"], stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT
        )
        processes.append(sentinel)
        wait_for_port("127.0.0.1", sentinel_port, sentinel, sentinel_log)

        query = [cli, "-h", "127.0.0.1", "-p", str(sentinel_port), "sentinel", "get-master-addr-by-name", MASTER_NAME]
        deadline = time.monotonic() + 15
        master_address = ["127.0.0.1", str(master_port)]
        while subprocess.run(query, capture_output=True, text=True, timeout=5).stdout.split() != master_address:
            if time.monotonic() > deadline:
                raise TimeoutError(f"sentinel on {sentinel_port} does not report {MASTER_NAME} at port {master_port}")
            time.sleep(0.05)
        yield f"redis+sentinel://127.0.0.1:{sentinel_port}/{MASTER_NAME}/0"
    finally:
        for process in reversed(processes):
            stop(process)
