"""Two checkouts of gate side by side: CPU time per request and requests per second with the full pipeline.

`python -m bench.compare OLD NEW` starts nginx with the 2 KB page, one Redis and a gate from each checkout (its own
shipped rules, a shared key file, --workers workers), then runs wrk with the benchmark's browsers against the two in
alternating order, --rounds times. For each run it takes the CPU time gate's processes used (user and system, from
/proc) and divides it by the requests wrk completed. On a shared machine CPU per request moves far less between
runs than requests per second, which the other tenants' load decides: two paired throughput runs of the same two
builds gave +0.6 % and +9.5 % (docs/benchmarks.md, "The request path compiled"). Prints each round, each side's
medians and the median of the rounds' ratios of CPU per request, and exits 0.

Each gate runs with its checkout as the working directory, so Python imports that checkout's gate, as installed
there (compiled or not). For an older commit: `git worktree add /tmp/old <commit>`, then build its extensions in
place, for instance with a throwaway environment: `python3 -m venv /tmp/oldvenv && /tmp/oldvenv/bin/pip install
--no-deps -e /tmp/old` (with `GATE_PURE_PYTHON=1` to compare it uncompiled).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
from collections.abc import Sequence
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path

from bench.clients import BROWSERS_ONLY, lua_script
from bench.proxy import NGINX_WORKERS, SITE, WARMUP_SECONDS, parse_wrk, positive_int, run_wrk
from bench.soak import worker_pids
from gate.keys import load_keyring, write_key_file
from tests.support.gate_process import GateProcess, start_gate
from tests.support.nginx import start_nginx
from tests.support.redis_server import redis_server

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


@dataclass(frozen=True)
class Options:
    checkouts: tuple[Path, Path]
    rounds: int
    duration: int
    workers: int
    connections: int


@dataclass(frozen=True)
class Run:
    cpu_per_request_us: float
    requests_per_second: float
    p99_ms: float


def parse_options(arguments: Sequence[str]) -> Options:
    parser = argparse.ArgumentParser(prog="python -m bench.compare", description=__doc__.split("\n\n")[0])
    parser.add_argument("old", type=Path, help="the checkout measured first in odd rounds")
    parser.add_argument("new", type=Path, help="the checkout compared with it")
    parser.add_argument("--rounds", type=positive_int, default=8, help="alternating rounds (8)")
    parser.add_argument("--duration", type=positive_int, default=6, help="seconds per wrk run (6)")
    parser.add_argument("--workers", type=positive_int, default=2, help="gate workers (2)")
    parser.add_argument("--connections", type=positive_int, default=64, help="wrk connections (64)")
    parsed = parser.parse_args(arguments)
    checkouts = (parsed.old.resolve(), parsed.new.resolve())
    for checkout in checkouts:
        if not (checkout / "gate" / "__init__.py").is_file():
            parser.error(f"{checkout}: not a checkout of gate")
    return Options(checkouts, parsed.rounds, parsed.duration, parsed.workers, parsed.connections)


def cpu_seconds(pids: Sequence[int]) -> float:
    """The user and system time these processes have used."""
    total = 0.0
    for pid in pids:
        fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
        total += (int(fields[11]) + int(fields[12])) / CLOCK_TICKS
    return total


def measure(gate: GateProcess, options: Options, browsers: Path) -> Run:
    processes = [gate.process.pid, *worker_pids(gate)]  # the supervisor, and the workers when there are several
    before = cpu_seconds(processes)
    result = parse_wrk(run_wrk(gate.url, options.connections, options.duration, browsers))
    used = cpu_seconds(processes) - before
    if result.non_2xx_3xx or result.socket_errors:
        raise RuntimeError(f"{gate.url}: {result.non_2xx_3xx} non-2xx/3xx answers, {result.socket_errors} errors")
    return Run(used / result.requests * 1e6, result.requests_per_second, result.p99_ms)


def compare(options: Options) -> list[tuple[Path, list[Run]]]:
    """Each checkout with its runs, in the order given (one checkout twice measures the noise between two gates)."""
    runs: list[list[Run]] = [[], []]
    with tempfile.TemporaryDirectory(prefix="gate-compare-") as temporary, ExitStack() as running:
        directory = Path(temporary)
        nginx = start_nginx(directory / "nginx", SITE, workers=NGINX_WORKERS)
        running.callback(nginx.stop)
        key = directory / "secret.key"
        write_key_file(key)
        browsers = directory / "browsers.lua"
        browsers.write_text(lua_script(load_keyring(key), BROWSERS_ONLY))
        store = running.enter_context(redis_server(directory))
        gates = []
        for number, checkout in enumerate(options.checkouts):
            gate = start_gate(
                directory / f"gate-{number}",
                nginx.url,
                *("--rules", str(checkout / "rules" / "default.yaml"), "--trusted-proxy", "127.0.0.1/32"),
                *("--secret-file", str(key), "--store", store, "--workers", str(options.workers)),
                cwd=checkout,
            )
            running.callback(gate.stop)
            run_wrk(gate.url, options.connections, WARMUP_SECONDS, browsers)
            gates.append(gate)
        for number in range(options.rounds):
            for side in (0, 1) if number % 2 == 0 else (1, 0):
                runs[side].append(measure(gates[side], options, browsers))
            old, new = runs[0][-1], runs[1][-1]
            print(
                f"round {number + 1}: CPU per request {old.cpu_per_request_us:.0f} / {new.cpu_per_request_us:.0f} µs, "
                f"req/s {old.requests_per_second:,.0f} / {new.requests_per_second:,.0f}",
                flush=True,
            )
    return list(zip(options.checkouts, runs, strict=True))


def report(runs: Sequence[tuple[Path, list[Run]]]) -> str:
    (old, old_runs), (new, new_runs) = runs
    lower = sum(b.cpu_per_request_us < a.cpu_per_request_us for a, b in zip(old_runs, new_runs, strict=True))
    lines = [
        "| checkout | CPU per request, µs (median) | req/s (median) | p99 ms (median) |",
        "|---|---:|---:|---:|",
    ]
    for checkout, measured in runs:
        cpu = statistics.median(run.cpu_per_request_us for run in measured)
        rate = statistics.median(run.requests_per_second for run in measured)
        p99 = statistics.median(run.p99_ms for run in measured)
        lines.append(f"| {checkout} | {cpu:.0f} | {rate:,.0f} | {p99:.1f} |")
    # Each round's two runs are minutes apart at most; the machine's speed drifts more than that between rounds, so
    # the change is the median of the rounds' ratios, not the ratio of the two sides' medians.
    change = statistics.median(
        b.cpu_per_request_us / a.cpu_per_request_us for a, b in zip(old_runs, new_runs, strict=True)
    )
    lines.append(
        f"\n{new} used {100 * (change - 1):+.1f} % CPU per request against {old} (median of the rounds' ratios), "
        f"less in {lower} of {len(old_runs)} rounds"
    )
    return "\n".join(lines)


def main(arguments: Sequence[str] | None = None) -> int:
    options = parse_options(sys.argv[1:] if arguments is None else arguments)
    print(report(compare(options)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
