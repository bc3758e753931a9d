"""Free loopback ports and waiting for a listener."""

from __future__ import annotations

import socket
import subprocess
import time
from pathlib import Path

_handed_out: set[int] = set()


def free_port(host: str = "127.0.0.1") -> int:
    """A port nothing listens on, and that this process has not handed out before: the kernel may offer the same
    free port to two calls in a row (a gate's public and metrics ports once came out equal, and it could not start)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    while True:
        with socket.socket(family, socket.SOCK_STREAM) as probe:
            probe.bind((host, 0))
            port = int(probe.getsockname()[1])
        if port not in _handed_out:
            _handed_out.add(port)
            return port


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
