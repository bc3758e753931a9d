"""Free loopback ports and waiting for a listener."""

from __future__ import annotations

import socket
import subprocess
import time
from pathlib import Path


def free_port(host: str = "127.0.0.1") -> int:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.bind((host, 0))
        return int(probe.getsockname()[1])


def wait_for_port(
    host: str, port: int, process: subprocess.Popen[bytes], log: Path | None, timeout: float = 15
) -> None:
    """Until something accepts on host:port; fail fast (with the log) when the process dies first."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            output = log.read_text(errors="replace") if log and log.exists() else ""
            raise RuntimeError(f"{process.args!r} exited with {process.returncode}:\n{output[-4000:]}")
        try:
            with socket.create_connection((host, port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.05)
    process.kill()
    raise TimeoutError(f"nothing listening on {host}:{port} after {timeout}s")


def stop(process: subprocess.Popen[bytes], timeout: float = 10) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
