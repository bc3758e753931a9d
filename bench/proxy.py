"""gate against nginx in one run, with wrk: the baseline is nginx proxying the page from the upstream nginx.

Configurations:
- nginx direct (for reference) and nginx as a proxy in front of it (the baseline every ratio divides by);
- gate forwarding only (rules that allow everything), 2 workers: the floor of gate's per-request cost;
- gate's full pipeline, 1 and 2 workers: the shipped rules, a Redis store and a key file, every request a browser
  presenting a valid pass token (fingerprinting, policy, token check, budget count, the guard's rate limit and
  forwarding all run) from a random address in its token's /24, which gate believes from 127.0.0.1;
- nginx serving the page with auth_request to gate (deploy/nginx/gate-auth.conf's locations without TLS), the same
  full pipeline, 2 workers: asking gate every time, and with `--auth-cache 2` and the shipped config's proxy_cache,
  where nginx reuses a let-through for the same client, URI, User-Agent and cookies for 2 s.
Then the latency one client sees: wrk with one connection against the baseline and the full pipeline.

The machine is shared and wrk runs on the same cores, so absolute figures drift between runs; the targets are
measured in interleaved rounds and every figure is given as a ratio to the baseline from the same run.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import shlex
import shutil
import statistics
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from contextlib import ExitStack
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench.clients import BROWSERS_ONLY, lua_script
from gate.keys import load_keyring, write_key_file
from tests.support.gate_process import GateProcess, start_gate, start_transparent_gate
from tests.support.nginx import nginx_binary, start_nginx, start_nginx_with
from tests.support.ports import free_port, stop
from tests.support.redis_server import redis_server

REPOSITORY = Path(__file__).resolve().parent.parent
SITE = REPOSITORY / "tests" / "data" / "site"
RESULTS = REPOSITORY / "bench" / "results"
PAGE = "/page.html"
THREADS = 2
STORE_LOGGER = "gate.store"  # the fallback in front of the shared store (gate/store/fallback.py)
SHM = "/dev/shm" if os.path.isdir("/dev/shm") else None  # tmpfs, for nginx's cache of gate's decisions
WARMUP_SECONDS = 2
# One nginx worker per core, as a production nginx on this machine would have.
NGINX_WORKERS = 2
FULL_PIPELINE_WORKERS = (1, 2)
LATENCY_SECONDS = 5
# Seconds wrk may overrun --duration (start-up, final reads) before the run is treated as hung.
WRK_GRACE_SECONDS = 30
NGINX_DIRECT = "nginx direct"
NGINX_PROXY = "nginx proxy (baseline)"
FORWARDING_ONLY = "gate forwarding only, 2 workers"
AUTH_MODE = "nginx + gate auth mode, full pipeline, 2 workers"
AUTH_CACHE_SECONDS = 2
AUTH_CACHED = f"nginx + gate auth mode, decisions reused {AUTH_CACHE_SECONDS} s, 2 workers"
FULL_PIPELINE_2 = "gate full pipeline, 2 workers"
NGINX_PROXY_SERVER = """
    upstream site {{ server 127.0.0.1:{upstream_port}; keepalive 64; }}
    server {{
        listen 127.0.0.1:{port};
        location / {{
            proxy_pass http://site;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_set_header Host $host;
            proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
        }}
    }}
"""
# deploy/nginx/gate-auth.conf's decision locations, on plain HTTP so the figure compares with the baseline; the
# client's address comes from wrk's X-Forwarded-For, as behind a load balancer.
AUTH_SERVER = """
    {cache_path}
    upstream gate {{ server 127.0.0.1:{gate_port}; keepalive 64; keepalive_timeout 4s; }}
    server {{
        listen 127.0.0.1:{port};
        root {root};
        set_real_ip_from 127.0.0.1;
        real_ip_header X-Forwarded-For;
        location / {{
            auth_request /.gate/auth;
            error_page 401 = /.gate/challenge;
            try_files $uri $uri/ =404;
        }}
        location = /.gate/auth {{
            internal;
            proxy_pass http://gate;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_pass_request_body off;
            proxy_set_header Content-Length "";
            proxy_set_header Host $host;
            proxy_set_header X-Original-URI $request_uri;
            proxy_set_header X-Original-Method $request_method;
            proxy_set_header X-Real-IP $remote_addr;
            proxy_set_header X-Forwarded-For $remote_addr;
            {cache}
        }}
    }}
"""
# The shipped config's decision cache, read from deploy/nginx/gate-auth.conf (so the benchmark measures what ships),
# for the run with --auth-cache: its proxy_cache_path parameters after the directory, and its two directives.
SHIPPED_AUTH = (REPOSITORY / "deploy" / "nginx" / "gate-auth.conf").read_text()


def shipped_cache() -> tuple[str, str]:
    found = re.search(r"^proxy_cache_path \S+ (.*?;)", SHIPPED_AUTH, re.MULTILINE | re.DOTALL)
    directives = re.findall(r"^\s*(proxy_cache(?:_key)? .*;)$", SHIPPED_AUTH, re.MULTILINE)
    if found is None or len(directives) != 2:
        raise RuntimeError("deploy/nginx/gate-auth.conf's decision cache changed shape: update bench/proxy.py")
    return re.sub(r"\s+", " ", found.group(1)), "\n".join(directives)


AUTH_CACHE_PATH, AUTH_CACHE = shipped_cache()

REQUESTS_PER_SECOND = re.compile(r"^Requests/sec:\s+([\d.]+)\s*$", re.MULTILINE)
REQUESTS = re.compile(r"^\s+(\d+) requests in ", re.MULTILINE)
P99 = re.compile(r"^\s+99%\s+([\d.]+)(us|ms|s|m)\s*$", re.MULTILINE)
P50 = re.compile(r"^\s+50%\s+([\d.]+)(us|ms|s|m)\s*$", re.MULTILINE)
NON_2XX_3XX = re.compile(r"Non-2xx or 3xx responses:\s+(\d+)")
SOCKET_ERRORS = re.compile(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)")
MILLISECONDS_PER_UNIT = {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60_000.0}


@dataclass(frozen=True)
class Options:
    duration: int
    rounds: int
    connections: int
    json_path: Path


@dataclass(frozen=True)
class Target:
    name: str
    url: str
    script: Path | None = None  # wrk's Lua script: the clients to play


@dataclass(frozen=True)
class WrkResult:
    requests: int
    requests_per_second: float
    p50_ms: float
    p99_ms: float
    non_2xx_3xx: int
    socket_errors: int


@dataclass(frozen=True)
class Measurement:
    round: int
    target: str
    result: WrkResult
    warmup_requests: int


@dataclass(frozen=True)
class Summary:
    configuration: str
    requests_per_second: float
    p99_ms: float
    vs_baseline: float
    non_2xx_3xx: int
    socket_errors: int


def positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, not {value}")
    return value


def parse_options(arguments: Sequence[str]) -> Options:
    parser = argparse.ArgumentParser(prog="python -m bench.proxy", description=__doc__)
    parser.add_argument("--duration", type=positive_int, default=10, help="seconds per measured wrk run (10)")
    parser.add_argument("--rounds", type=positive_int, default=3, help="interleaved rounds over all targets (3)")
    parser.add_argument("--connections", type=positive_int, default=64, help="wrk connections (64)")
    parser.add_argument("--json", type=Path, help="where to write the results (bench/results/proxy-<time>.json)")
    parsed = parser.parse_args(arguments)
    if parsed.connections < THREADS:
        parser.error(f"--connections must be at least the {THREADS} wrk threads")
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    json_path = parsed.json or RESULTS / f"proxy-{stamp}.json"
    return Options(parsed.duration, parsed.rounds, parsed.connections, json_path)


def wrk_command(url: str, connections: int, duration: int, script: Path | None = None) -> list[str]:
    threads = min(THREADS, connections)
    scripted = ["-s", str(script)] if script else []
    return ["wrk", f"-t{threads}", f"-c{connections}", f"-d{duration}s", "--latency", *scripted, url + PAGE]


def run_wrk(url: str, connections: int, duration: int, script: Path | None = None) -> str:
    completed = subprocess.run(
        wrk_command(url, connections, duration, script),
        capture_output=True,
        text=True,
        timeout=duration + WRK_GRACE_SECONDS,
        check=False,
    )
    if completed.returncode != 0:
        raise RuntimeError(f"wrk failed ({completed.returncode}):\n{completed.stdout}{completed.stderr}")
    return completed.stdout


def parse_wrk(output: str) -> WrkResult:
    """Requests/sec, the 99% latency line of --latency in ms, and the error counts wrk prints only when non-zero."""
    count = REQUESTS.search(output)
    requests = REQUESTS_PER_SECOND.search(output)
    p50 = P50.search(output)
    p99 = P99.search(output)
    if count is None or requests is None or p50 is None or p99 is None:
        raise ValueError(f"unexpected wrk output:\n{output}")
    non_2xx = NON_2XX_3XX.search(output)
    socket_errors = SOCKET_ERRORS.search(output)
    return WrkResult(
        requests=int(count.group(1)),
        requests_per_second=float(requests.group(1)),
        p50_ms=float(p50.group(1)) * MILLISECONDS_PER_UNIT[p50.group(2)],
        p99_ms=float(p99.group(1)) * MILLISECONDS_PER_UNIT[p99.group(2)],
        non_2xx_3xx=int(non_2xx.group(1)) if non_2xx else 0,
        socket_errors=sum(int(count) for count in socket_errors.groups()) if socket_errors else 0,
    )


def measure_rounds(targets: Sequence[Target], options: Options) -> list[Measurement]:
    """Each round warms up and measures every target in turn, so drift on the machine hits all of them alike."""
    measurements = []
    for number in range(1, options.rounds + 1):
        for target in targets:
            progress(f"round {number}/{options.rounds}: {target.name}")
            warmup = parse_wrk(run_wrk(target.url, options.connections, WARMUP_SECONDS, target.script))
            result = parse_wrk(run_wrk(target.url, options.connections, options.duration, target.script))
            measurements.append(Measurement(number, target.name, result, warmup.requests))
    return measurements


def summarise(
    targets: Sequence[Target], measurements: Sequence[Measurement], baseline_name: str = NGINX_PROXY
) -> list[Summary]:
    """Each target's medians over the rounds, its rate as a ratio to the median of `baseline_name` (a target)."""

    def of(name: str) -> list[WrkResult]:
        return [measurement.result for measurement in measurements if measurement.target == name]

    if not of(baseline_name):
        raise ValueError(f"no measurement of the baseline {baseline_name!r}")
    baseline = statistics.median(result.requests_per_second for result in of(baseline_name))
    summaries = []
    for target in targets:
        results = of(target.name)
        median = statistics.median(result.requests_per_second for result in results)
        summaries.append(
            Summary(
                configuration=target.name,
                requests_per_second=median,
                p99_ms=statistics.median(result.p99_ms for result in results),
                vs_baseline=median / baseline,
                non_2xx_3xx=sum(result.non_2xx_3xx for result in results),
                socket_errors=sum(result.socket_errors for result in results),
            )
        )
    return summaries


def gate_log_problems(gate: GateProcess) -> list[str]:
    """gate's own warnings and errors from its log (read after it stopped, so the log is complete), as
    "level (logger): message"."""
    return [
        f"{line.get('level')} ({line.get('logger')}): {line.get('message')}"
        for line in gate.log_lines()
        if line.get("level") in {"warning", "error", "critical"}
    ]


@dataclass(frozen=True)
class Latency:
    """p50 and p99 one client sees (one connection), through the baseline and through gate's full pipeline."""

    baseline_p50_ms: float
    gate_p50_ms: float
    baseline_p99_ms: float
    gate_p99_ms: float

    @property
    def added_p50_ms(self) -> float:
        return self.gate_p50_ms - self.baseline_p50_ms


def measure_latency(baseline: Target, gate: Target) -> Latency:
    progress("latency at one connection")
    results = {}
    for target in (baseline, gate):
        run_wrk(target.url, 1, WARMUP_SECONDS, target.script)
        results[target.name] = parse_wrk(run_wrk(target.url, 1, LATENCY_SECONDS, target.script))
    before, through = results[baseline.name], results[gate.name]
    return Latency(before.p50_ms, through.p50_ms, before.p99_ms, through.p99_ms)


@dataclass(frozen=True)
class Reuse:
    """With --auth-cache: how many of the requests nginx served gate was asked about."""

    requests: int
    decisions: int

    @property
    def reused_share(self) -> float:
        return 1 - self.decisions / self.requests if self.requests else 0.0


def requests_served(measurements: Sequence[Measurement], target: str) -> int:
    return sum(m.result.requests + m.warmup_requests for m in measurements if m.target == target)


def run_benchmark(
    options: Options,
) -> tuple[list[Summary], list[Measurement], Latency, Reuse, dict[str, list[str]]]:
    with tempfile.TemporaryDirectory(prefix="gate-bench-") as temporary:
        directory = Path(temporary)
        gates: dict[str, GateProcess] = {}
        with ExitStack() as running:
            nginx = start_nginx(directory / "nginx", SITE, workers=NGINX_WORKERS)
            running.callback(nginx.stop)

            def front(name: str, server: str, **fields: object) -> str:
                """An nginx in front: the baseline proxy, or the one asking gate (auth mode)."""
                port = free_port()
                config = server.format(port=port, root=SITE, **fields)
                process = start_nginx_with(directory / name, config, port, workers=NGINX_WORKERS)
                running.callback(stop, process)
                return f"http://127.0.0.1:{port}"

            key = directory / "secret.key"
            write_key_file(key)
            browsers = directory / "browsers.lua"
            browsers.write_text(lua_script(load_keyring(key), BROWSERS_ONLY))
            store = running.enter_context(redis_server(directory))

            def start(name: str, full: bool, *arguments: str) -> GateProcess:
                common = ("--secret-file", str(key), "--store", store, *arguments)
                if full:  # the shipped rules; browsers' addresses come from wrk's X-Forwarded-For
                    gate = start_gate(directory / name, nginx.url, "--trusted-proxy", "127.0.0.1/32", *common)
                else:
                    gate = start_transparent_gate(directory / name, nginx.url, *common)
                running.callback(gate.stop)
                gates[name] = gate
                return gate

            targets = [
                Target(NGINX_DIRECT, nginx.url, browsers),
                Target(NGINX_PROXY, front("nginx-proxy", NGINX_PROXY_SERVER, upstream_port=nginx.port), browsers),
                Target(FORWARDING_ONLY, start(FORWARDING_ONLY, False, "--workers", "2").url, browsers),
            ]
            for workers in FULL_PIPELINE_WORKERS:
                name = f"gate full pipeline, {workers} worker{'s' if workers > 1 else ''}"
                targets.append(Target(name, start(name, True, "--workers", str(workers)).url, browsers))
            auth_gate = start(AUTH_MODE, True, "--mode", "auth", "--workers", "2")
            auth_front = front("nginx-auth", AUTH_SERVER, gate_port=auth_gate.port, cache_path="", cache="")
            targets.append(Target(AUTH_MODE, auth_front, browsers))
            cached_gate = start(
                AUTH_CACHED, True, "--mode", "auth", "--workers", "2", "--auth-cache", str(AUTH_CACHE_SECONDS)
            )
            # In memory, as the shipped config's /run is: on disk, writing an entry for each new client cost nginx
            # more than asking gate (0.092 against 0.164 of the baseline, measured 2026-11-28 12:09 UTC).
            in_memory = Path(running.enter_context(tempfile.TemporaryDirectory(prefix="gate-bench-", dir=SHM)))
            cache_path = f"proxy_cache_path {in_memory / 'gate-decisions'} {AUTH_CACHE_PATH}"
            cached_front = front(
                "nginx-auth-cached", AUTH_SERVER, gate_port=cached_gate.port, cache_path=cache_path, cache=AUTH_CACHE
            )
            targets.append(Target(AUTH_CACHED, cached_front, browsers))
            measurements = measure_rounds(targets, options)
            by_name = {target.name: target for target in targets}
            latency = measure_latency(by_name[NGINX_PROXY], by_name[FULL_PIPELINE_2])
        log_problems = {name: gate_log_problems(gate) for name, gate in gates.items()}
        decisions = len([line for line in cached_gate.log_lines() if line.get("logger") == "gate.access"])
        reuse = Reuse(requests_served(measurements, AUTH_CACHED), decisions)
    return summarise(targets, measurements), measurements, latency, reuse, log_problems


def first_line(command: list[str]) -> str:
    """The version line of a tool that prints it to stdout or stderr, with any exit status (wrk -v exits 1)."""
    completed = subprocess.run(command, capture_output=True, text=True, check=False)
    return (completed.stdout + completed.stderr).strip().splitlines()[0]


def environment(options: Options, arguments: Sequence[str]) -> dict[str, Any]:
    return {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "command": shlex.join(["python", "-m", "bench.proxy", *arguments]),
        "wrk_command": shlex.join(wrk_command("URL", options.connections, options.duration, Path("browsers.lua"))),
        "warmup_seconds": WARMUP_SECONDS,
        "rounds": options.rounds,
        "nproc": len(os.sched_getaffinity(0)),
        "python": platform.python_version(),
        "nginx": first_line([nginx_binary(), "-v"]).removeprefix("nginx version: "),
        "nginx_workers": NGINX_WORKERS,
        "wrk": first_line(["wrk", "-v"]).split(" Copyright")[0],
    }


def markdown_table(summaries: Sequence[Summary], baseline: str = "nginx proxy") -> str:
    lines = [
        f"| configuration | req/s (median) | p99 ms (median) | vs {baseline} |",
        "|---|---:|---:|---:|",
    ]
    for summary in summaries:
        lines.append(
            f"| {summary.configuration} | {summary.requests_per_second:,.0f} | {summary.p99_ms:.2f} "
            f"| {summary.vs_baseline:.3f} |"
        )
    return "\n".join(lines)


def latency_table(latency: Latency) -> str:
    return "\n".join(
        [
            "| one connection | p50 ms | p99 ms |",
            "|---|---:|---:|",
            f"| {NGINX_PROXY} | {latency.baseline_p50_ms:.3f} | {latency.baseline_p99_ms:.3f} |",
            f"| {FULL_PIPELINE_2} | {latency.gate_p50_ms:.3f} | {latency.gate_p99_ms:.3f} |",
            f"| added by gate | {latency.added_p50_ms:.3f} | |",
        ]
    )


def only_reported(line: str) -> bool:
    """A warning, or the store's fallback taking over: with one worker on cores shared with wrk, two nginx and
    Redis, gate's event loop sometimes runs later than the 25 ms --store-timeout, and after a few misses in a row
    the fallback answers for a few seconds (gate doing its job under overload, not a failure of the run)."""
    return line.startswith("warning") or f"({STORE_LOGGER})" in line


def problems(summaries: Sequence[Summary], log_problems: dict[str, list[str]]) -> tuple[list[str], list[str]]:
    """What fails the run (wrk's errors, gate's errors) and what is only reported (see only_reported)."""
    found = []
    for summary in summaries:
        if summary.non_2xx_3xx or summary.socket_errors:
            found.append(
                f"{summary.configuration}: wrk reported {summary.non_2xx_3xx} non-2xx/3xx responses "
                f"and {summary.socket_errors} socket errors"
            )
    notes = []
    for name, lines in log_problems.items():
        if errors := [line for line in lines if not only_reported(line)]:
            found.append(f"{name}: {len(errors)} error lines in gate's log, first: {errors[0]}")
        if reported := [line for line in lines if only_reported(line)]:
            notes.append(f"{name}: {len(reported)} lines about overload in gate's log, first: {reported[0]}")
    return found, notes


def reuse_line(reuse: Reuse) -> str:
    return (
        f"- {AUTH_CACHED}: gate decided {reuse.decisions:,} of the {reuse.requests:,} requests nginx served"
        f" (warm-ups included); nginx reused a decision for {reuse.reused_share:.1%}"
    )


def report(
    setting: dict[str, Any],
    summaries: Sequence[Summary],
    latency: Latency,
    reuse: Reuse,
    found: Sequence[str],
    notes: Sequence[str],
) -> str:
    header = [
        f"- date: {setting['date']}",
        f"- command: `{setting['command']}`",
        f"- wrk: `{setting['wrk_command']}` per target, after a {setting['warmup_seconds']} s warm-up; rounds:"
        f" {setting['rounds']}, each measuring every configuration below in turn",
        f"- nproc: {setting['nproc']}; python {setting['python']}; {setting['nginx']} ({setting['nginx_workers']}"
        f" workers); {setting['wrk']}",
    ]
    errors = [f"- ERROR {line}" for line in found] or ["- no non-2xx/3xx responses, socket errors or gate log errors"]
    tables = [markdown_table(summaries), "", latency_table(latency), "", reuse_line(reuse)]
    return "\n".join([*header, "", *tables, "", *errors, *(f"- note: {line}" for line in notes)])


def write_json(
    path: Path,
    setting: dict[str, Any],
    summaries: Sequence[Summary],
    measurements: Sequence[Measurement],
    latency: Latency,
    reuse: Reuse,
    found: Sequence[str],
    notes: Sequence[str],
) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    document = {
        **setting,
        "summary": [asdict(summary) for summary in summaries],
        "measurements": [asdict(measurement) for measurement in measurements],
        "latency": {**asdict(latency), "added_p50_ms": latency.added_p50_ms},
        "auth_cache": {**asdict(reuse), "reused_share": reuse.reused_share},
        "problems": list(found),
        "notes": list(notes),
    }
    path.write_text(json.dumps(document, indent=2) + "\n")


def progress(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def main(arguments: Sequence[str] | None = None) -> int:
    arguments = sys.argv[1:] if arguments is None else arguments
    options = parse_options(arguments)
    if shutil.which("wrk") is None:
        progress("wrk is not installed: `make system-deps` installs it")
        return 1
    setting = environment(options, arguments)
    try:
        summaries, measurements, latency, reuse, log_problems = run_benchmark(options)
    except KeyboardInterrupt:
        progress("interrupted; every process this benchmark started has been stopped")
        return 130
    found, notes = problems(summaries, log_problems)
    print(report(setting, summaries, latency, reuse, found, notes))
    write_json(options.json_path, setting, summaries, measurements, latency, reuse, found, notes)
    progress(f"results written to {options.json_path}")
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main())
