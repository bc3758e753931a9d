"""Soak: gate (2 workers, the shipped rules, a Redis store) in front of nginx under wrk's full load for a bounded time
(10 minutes by default), with a mix of clients from many addresses, sampled every --interval seconds: the workers'
memory, Redis's key count and memory, the request rate, and answers by kind (by design: 2xx, 3xx and 4xx; failures:
5xx and socket errors). Not part of `make bench` or of CI: `make soak`.

Every request carries a random X-Forwarded-For (gate trusts it from 127.0.0.1), so per-client state (rate-limit
keys in Redis, in-process caches) is created for new addresses all the time; the question is whether it stays
bounded. The clients, chosen at random per request:

- browsers: a real Chromium navigation's headers and a pass token minted with gate's key for their /24 (the page);
- scrapers: a Chrome User-Agent without a browser's other headers and no pass (the challenge page);
- declared AI crawlers: GPTBot (from outside OpenAI's ranges: denied), ClaudeBot, CCBot, PerplexityBot, Bytespider
  (the terms, 403);
- HTTP libraries: curl, python-requests, Go, axios (the challenge page).
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from contextlib import ExitStack
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import redis

from bench.clients import MIX, lua_script
from bench.proxy import (
    NGINX_WORKERS,
    PAGE,
    RESULTS,
    SITE,
    THREADS,
    WRK_GRACE_SECONDS,
    gate_log_problems,
    parse_wrk,
    positive_int,
    progress,
)
from gate.keys import write_key_file
from tests.support.gate_process import GateProcess, start_gate
from tests.support.nginx import start_nginx
from tests.support.redis_server import redis_server

GATE_WORKERS = 2
STATUS_LINE = re.compile(r"^gate-soak status (\d+) (\d+)$", re.MULTILINE)
# Redis's key count has stopped growing when its peak in the last third of the run is within 10 % (or 100 keys, the
# noise of a small count) of its peak in the middle third.
PLATEAU_SHARE = 1.10
PLATEAU_KEYS = 100


@dataclass(frozen=True)
class Options:
    duration: int
    interval: int
    warmup: int
    connections: int
    json_path: Path


@dataclass(frozen=True)
class Sample:
    elapsed: int  # seconds of load when this sample was taken
    requests_per_second: float
    answered: int  # responses of any status
    server_errors: int  # 5xx
    socket_errors: int
    rss_sum_kib: int
    rss_max_kib: int
    redis_keys: int
    redis_used_memory: int
    statuses: dict[int, int] = field(default_factory=dict)


@dataclass(frozen=True)
class Summary:
    rss_after_warmup_kib: int
    rss_at_end_kib: int
    rss_growth_percent: float
    rss_max_worker_end_kib: int
    peak_redis_keys: int
    redis_keys_plateaued: bool
    requests: int
    server_errors: int
    socket_errors: int
    error_rate: float
    statuses: dict[int, int]


def parse_options(arguments: Sequence[str]) -> Options:
    parser = argparse.ArgumentParser(prog="python -m bench.soak", description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration", type=positive_int, default=600, help="seconds of load (600)")
    parser.add_argument("--interval", type=positive_int, default=10, help="seconds between samples (10)")
    parser.add_argument("--warmup", type=positive_int, default=60, help="seconds before the memory baseline (60)")
    parser.add_argument("--connections", type=positive_int, default=64, help="wrk connections (64)")
    parser.add_argument("--json", type=Path, help="where to write the samples (bench/results/soak-<time>.json)")
    parsed = parser.parse_args(arguments)
    if parsed.warmup >= parsed.duration:
        parser.error("--warmup must be shorter than --duration")
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    return Options(
        parsed.duration,
        parsed.interval,
        parsed.warmup,
        parsed.connections,
        parsed.json or RESULTS / f"soak-{stamp}.json",
    )


def worker_pids(gate: GateProcess) -> list[int]:
    """gate's worker processes: the supervisor's children that run the app (not multiprocessing's helpers)."""
    workers = []
    for status in Path("/proc").glob("[0-9]*/status"):
        try:
            text = status.read_text()
            command = (status.parent / "cmdline").read_bytes()
        except OSError:
            continue
        parent = re.search(r"^PPid:\s+(\d+)$", text, re.MULTILINE)
        if parent and int(parent.group(1)) == gate.process.pid and b"spawn_main" in command:
            workers.append(int(status.parent.name))
    return workers


def rss_kib(pid: int) -> int:
    found = re.search(r"^VmRSS:\s+(\d+) kB$", Path(f"/proc/{pid}/status").read_text(), re.MULTILINE)
    return int(found.group(1)) if found else 0


def run_segment(url: str, script: Path, options: Options) -> tuple[float, int, dict[int, int]]:
    """One wrk run of --interval seconds: requests per second, socket errors, and responses by status."""
    command = ["wrk", f"-t{THREADS}", f"-c{options.connections}", f"-d{options.interval}s", "--latency"]
    completed = subprocess.run(
        [*command, "-s", str(script), url + PAGE],
        capture_output=True,
        text=True,
        timeout=options.interval + WRK_GRACE_SECONDS,
        check=False,
    )
    if completed.returncode != 0:
        raise RuntimeError(f"wrk failed ({completed.returncode}):\n{completed.stdout}{completed.stderr}")
    result = parse_wrk(completed.stdout)
    statuses = {int(status): int(count) for status, count in STATUS_LINE.findall(completed.stdout)}
    return result.requests_per_second, result.socket_errors, statuses


def soak(options: Options) -> tuple[list[Sample], list[str]]:
    with tempfile.TemporaryDirectory(prefix="gate-soak-") as temporary, ExitStack() as running:
        directory = Path(temporary)
        nginx = start_nginx(directory / "nginx", SITE, workers=NGINX_WORKERS)
        running.callback(nginx.stop)
        store = running.enter_context(redis_server(directory))
        key = directory / "secret.key"
        keys = write_key_file(key)
        script = directory / "mix.lua"
        script.write_text(lua_script(keys))
        gate = start_gate(
            directory / "gate",
            nginx.url,
            "--workers", str(GATE_WORKERS),
            "--store", store,
            "--secret-file", str(key),
            "--trusted-proxy", "127.0.0.1/32",
            "--log-level", "warning",  # a line per request would be gigabytes; warnings and errors are read below
        )  # fmt: skip
        running.callback(gate.stop)
        samples = []
        with redis.Redis.from_url(store) as client:
            started = time.monotonic()
            while time.monotonic() - started < options.duration:
                rate, socket_errors, statuses = run_segment(gate.url, script, options)
                rss = [rss_kib(pid) for pid in worker_pids(gate)]
                memory = client.info("memory")
                sample = Sample(
                    elapsed=round(time.monotonic() - started),
                    requests_per_second=rate,
                    answered=sum(statuses.values()),
                    server_errors=sum(count for status, count in statuses.items() if status >= 500),
                    socket_errors=socket_errors,
                    rss_sum_kib=sum(rss),
                    rss_max_kib=max(rss, default=0),
                    redis_keys=int(client.dbsize()),
                    redis_used_memory=int(memory["used_memory"]),
                    statuses=statuses,
                )
                samples.append(sample)
                progress(
                    f"{sample.elapsed:>5} s  {rate:>8,.0f} req/s  rss {sample.rss_sum_kib / 1024:,.1f} MiB  "
                    f"redis {sample.redis_keys:,} keys  5xx {sample.server_errors}  socket errors {socket_errors}"
                )
        gate.stop()
        problems = gate_log_problems(gate)
    return samples, problems


def summarise(samples: Sequence[Sample], warmup: int) -> Summary:
    baseline = next((sample for sample in samples if sample.elapsed >= warmup), samples[0])
    end = samples[-1]
    third = max(1, len(samples) // 3)
    middle_peak = max(sample.redis_keys for sample in samples[third : 2 * third] or samples)
    last_peak = max(sample.redis_keys for sample in samples[2 * third :])
    statuses: dict[int, int] = {}
    for sample in samples:
        for status, count in sample.statuses.items():
            statuses[status] = statuses.get(status, 0) + count
    requests = sum(sample.answered for sample in samples)
    server_errors = sum(sample.server_errors for sample in samples)
    socket_errors = sum(sample.socket_errors for sample in samples)
    return Summary(
        rss_after_warmup_kib=baseline.rss_sum_kib,
        rss_at_end_kib=end.rss_sum_kib,
        rss_growth_percent=100 * (end.rss_sum_kib - baseline.rss_sum_kib) / baseline.rss_sum_kib,
        rss_max_worker_end_kib=end.rss_max_kib,
        peak_redis_keys=max(sample.redis_keys for sample in samples),
        redis_keys_plateaued=last_peak <= max(middle_peak * PLATEAU_SHARE, middle_peak + PLATEAU_KEYS),
        requests=requests,
        server_errors=server_errors,
        socket_errors=socket_errors,
        error_rate=(server_errors + socket_errors) / max(1, requests + socket_errors),
        statuses=dict(sorted(statuses.items())),
    )


def report(options: Options, samples: Sequence[Sample], summary: Summary, problems: Sequence[str]) -> str:
    lines = [
        f"- date: {datetime.now(UTC).isoformat(timespec='seconds')}; duration {options.duration} s, a sample every "
        f"{options.interval} s, memory baseline after {options.warmup} s",
        f"- wrk -t{THREADS} -c{options.connections} with a Lua mix (percent): "
        + ", ".join(f"{kind} {share}" for kind, share in MIX.items()),
        f"- gate: {GATE_WORKERS} workers, shipped rules, Redis store, key file, trusted proxy 127.0.0.1, warning logs",
        "",
        "| s | req/s | gate RSS sum MiB | max worker MiB | Redis keys | Redis MiB | 5xx | socket errors |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for sample in samples:
        lines.append(
            f"| {sample.elapsed} | {sample.requests_per_second:,.0f} | {sample.rss_sum_kib / 1024:.1f} "
            f"| {sample.rss_max_kib / 1024:.1f} | {sample.redis_keys:,} | {sample.redis_used_memory / 2**20:.1f} "
            f"| {sample.server_errors} | {sample.socket_errors} |"
        )
    lines += [
        "",
        "| summary | value |",
        "|---|---:|",
        f"| gate RSS (both workers) after warm-up | {summary.rss_after_warmup_kib / 1024:.1f} MiB |",
        f"| gate RSS at the end | {summary.rss_at_end_kib / 1024:.1f} MiB |",
        f"| growth | {summary.rss_growth_percent:+.1f} % |",
        f"| peak Redis keys | {summary.peak_redis_keys:,} |",
        f"| Redis keys stopped growing | {'yes' if summary.redis_keys_plateaued else 'no'} |",
        f"| responses | {summary.requests:,} |",
        f"| by status | {', '.join(f'{status}: {count:,}' for status, count in summary.statuses.items())} |",
        f"| 5xx + socket errors | {summary.server_errors:,} + {summary.socket_errors:,} "
        f"({100 * summary.error_rate:.4f} %) |",
        "",
        *([f"- gate log: {len(problems)} warning/error lines, first: {problems[0]}"] if problems else []),
        *(["- gate log: no warnings or errors"] if not problems else []),
    ]
    return "\n".join(lines)


def main(arguments: Sequence[str] | None = None) -> int:
    arguments = sys.argv[1:] if arguments is None else arguments
    options = parse_options(arguments)
    if shutil.which("wrk") is None:
        progress("wrk is not installed: `make system-deps` installs it")
        return 1
    try:
        samples, problems = soak(options)
    except KeyboardInterrupt:
        progress("interrupted; every process the soak started has been stopped")
        return 130
    summary = summarise(samples, options.warmup)
    print(report(options, samples, summary, problems))
    options.json_path.parent.mkdir(parents=True, exist_ok=True)
    document = {"summary": asdict(summary), "samples": [asdict(sample) for sample in samples], "log": problems}
    options.json_path.write_text(json.dumps(document, indent=2) + "\n")
    progress(f"samples written to {options.json_path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
