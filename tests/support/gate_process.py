"""gate itself as a real process (`python -m gate serve`), on free ports, stopped with SIGTERM."""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from tests.support.ports import free_port, stop, wait_for_port

# A policy that allows every request (still fingerprinted and logged): for tests about forwarding, not deciding.
ALLOW_ALL = Path(__file__).resolve().parent.parent / "data" / "rules" / "allow-all.yaml"


@dataclass
class GateProcess:
    host: str
    port: int
    metrics_port: int
    process: subprocess.Popen[bytes]
    log: Path

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    @property
    def metrics_url(self) -> str:
        return f"http://127.0.0.1:{self.metrics_port}"

    def stop(self) -> None:
        stop(self.process)

    def log_lines(self) -> list[dict[str, Any]]:
        """The JSON lines gate has written so far; a line it is still writing (no newline yet) is left for later."""
        text = self.log.read_text(errors="replace")
        complete = text[: text.rfind("\n") + 1]
        return [json.loads(line) for line in complete.splitlines() if line.startswith("{")]

    def access_lines(self, path: str | None = None, wait: float = 2.0) -> list[dict[str, Any]]:
        """The request log lines (for `path`, when given), waiting briefly for the line to be written."""
        deadline = time.monotonic() + wait
        while True:
            lines = [
                line
                for line in self.log_lines()
                if line.get("logger") == "gate.access" and (path is None or line.get("path") == path)
            ]
            if lines or time.monotonic() > deadline:
                return lines
            time.sleep(0.05)

    def exchange(self, request: bytes) -> bytes:
        """Send bytes exactly as given (no client library normalising them) and read the whole response."""
        with socket.create_connection((self.host, self.port), timeout=10) as connection:
            connection.sendall(request)
            chunks = []
            while chunk := connection.recv(65536):
                chunks.append(chunk)
        return b"".join(chunks)

    def metric(self, name: str, **labels: str) -> float:
        """One sample of the gate's /metrics (0 when absent)."""
        return sample(httpx.get(self.metrics_url + "/metrics").text, name, **labels)

    def peak_rss_kib(self) -> int:
        return _status_kib(self.process.pid, "VmHWM")

    def rss_kib(self) -> int:
        return _status_kib(self.process.pid, "VmRSS")


def sample(metrics: str, name: str, **labels: str) -> float:
    """The value of one sample in Prometheus text format (0 when absent)."""
    for line in metrics.splitlines():
        match = re.match(rf"^{re.escape(name)}(\{{(?P<labels>[^}}]*)\}})? (?P<value>\S+)$", line)
        if not match:
            continue
        found = dict(re.findall(r'(\w+)="([^"]*)"', match.group("labels") or ""))
        if all(found.get(key) == value for key, value in labels.items()):
            return float(match.group("value"))
    return 0.0


def _status_kib(pid: int, field: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise KeyError(field)


def start_gate(
    directory: Path,
    upstream: str,
    *arguments: str,
    host: str = "127.0.0.1",
    env: dict[str, str] | None = None,
    cwd: Path | None = None,
) -> GateProcess:
    """Start `gate serve` in front of `upstream` with extra command-line arguments; wait until it listens. In `cwd`,
    Python imports gate from there first (bench.compare runs two checkouts so)."""
    directory.mkdir(parents=True, exist_ok=True)
    port = free_port(host)
    metrics_port = free_port()
    bind = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    log = directory / f"gate-{port}.log"
    environment = {key: value for key, value in os.environ.items() if not key.startswith("GATE_")}
    environment.update(env or {})
    command = [
        sys.executable,
        "-m",
        "gate",
        "serve",
        "--upstream",
        upstream,
        "--bind",
        bind,
        "--metrics-bind",
        f"127.0.0.1:{metrics_port}",
        *arguments,
    ]
    with log.open("wb") as output:
        process = subprocess.Popen(command, stdout=output, stderr=subprocess.STDOUT, env=environment, cwd=cwd)
    wait_for_port(host, port, process, log)
    wait_for_port("127.0.0.1", metrics_port, process, log)
    return GateProcess(host=host, port=port, metrics_port=metrics_port, process=process, log=log)


def start_transparent_gate(directory: Path, upstream: str, *arguments: str, host: str = "127.0.0.1") -> GateProcess:
    """A gate whose rules allow everything."""
    return start_gate(directory, upstream, "--rules", str(ALLOW_ALL), *arguments, host=host)


AUTH_MODE = ("--mode", "auth", "--trusted-proxy", "127.0.0.1/32")


@contextmanager
def started_gates(
    directory: Path, upstream: str, rules: str, **variants: tuple[str, ...]
) -> Iterator[dict[str, GateProcess]]:
    """One gate per named variant (its extra arguments), all on the same rules, stopped together."""
    path = directory / "rules.yaml"
    path.write_text(rules)
    with ExitStack() as running:
        gates = {}
        for name, arguments in variants.items():
            gates[name] = start_gate(directory / name, upstream, "--rules", str(path), *arguments)
            running.callback(gates[name].stop)
        yield gates
