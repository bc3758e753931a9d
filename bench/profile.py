"""Where a gate worker's time goes: py-spy on the full pipeline under the benchmark's browsers, grouped by component.

A gate worker (the shipped rules, a Redis store, a key file; one worker unless --workers says otherwise) runs in
front of nginx and the 2 KB page, as in bench.proxy's full pipeline, while wrk sends browsers on valid pass tokens
from random addresses. After a warm-up, `py-spy record --format raw` samples that worker for --duration seconds;
each sample is put in the component of its innermost frame that belongs to one (the store call, the throttle,
the pass check, logs and metrics, the decision, forwarding, the HTTP server), else "event loop and the rest". It
prints the shares, the frames with the most samples of their own, and the requests per second wrk saw meanwhile
(lower than without the profiler), and exits 0. `make profile`; --raw keeps the folded stacks.

py-spy without --native attributes C code (system calls, the garbage collector, hiredis) to the Python frame
that called it, which is what the grouping wants: a socket write counts for the code that wrote.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import gate.app
from bench.clients import BROWSERS_ONLY, lua_script
from bench.proxy import NGINX_WORKERS, SITE, WARMUP_SECONDS, parse_wrk, positive_int, run_wrk
from bench.soak import worker_pids
from gate.keys import load_keyring, write_key_file
from tests.support.gate_process import GateProcess, start_gate
from tests.support.nginx import start_nginx
from tests.support.redis_server import redis_server

# Components by the paths of their frames, the first that matches a sample's innermost frame wins.
COMPONENTS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("the shared-store call (`gate/store`, the Redis client)", ("gate/store/", "redis/", "hiredis")),
    ("throttle (`gate/throttle.py`, `gate/local_quotas.py`)", ("gate/throttle.py", "gate/local_quotas.py")),
    ("pass check and budget (`gate/challenge/`)", ("gate/challenge/",)),
    (
        "access log, metrics, terms headers",
        ("gate/logs.py", "prometheus_client/", "gate/metrics.py", "gate/terms/", "json/"),
    ),
    (
        "the decision (facts, fingerprint, policy, verify step)",
        (
            "gate/facts.py",
            "gate/fingerprint/",
            "gate/policy/",
            "gate/verify/",
            "gate/net.py",
            "ipaddress.py",
            "ua_parser",
        ),
    ),
    ("forwarding (`gate/upstream.py`, `gate/proxy.py`)", ("gate/upstream.py", "gate/proxy.py")),
    (
        "HTTP server (`gate/connection.py`, `gate/cycle.py`, uvicorn)",
        ("gate/connection.py", "gate/cycle.py", "uvicorn/"),
    ),
)
REST = "event loop and the rest of `gate/app.py`"
LOOP_ENTRY = "asyncio/runners.py"  # frames above it (process start, uvicorn's supervisor) belong to every sample
IDLE_THREAD = "threading.py"  # uvicorn's health-check thread, blocked in recv(): py-spy still samples it
TOP_FRAMES = 15


@dataclass(frozen=True)
class Options:
    duration: int
    workers: int
    connections: int
    rate: int
    raw: Path | None


@dataclass(frozen=True)
class Profile:
    samples: int
    by_component: dict[str, int]
    by_own_frame: Counter[str]


def parse_options(arguments: Sequence[str]) -> Options:
    parser = argparse.ArgumentParser(prog="python -m bench.profile", description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration", type=positive_int, default=15, help="seconds sampled (15)")
    parser.add_argument("--workers", type=positive_int, default=1, help="gate workers; the first is sampled (1)")
    parser.add_argument("--connections", type=positive_int, default=64, help="wrk connections (64)")
    parser.add_argument("--rate", type=positive_int, default=250, help="py-spy samples per second (250)")
    parser.add_argument("--raw", type=Path, help="keep py-spy's folded stacks in this file")
    namespace = parser.parse_args(arguments)
    return Options(namespace.duration, namespace.workers, namespace.connections, namespace.rate, namespace.raw)


def frame_name(frame: str) -> str:
    """'send (uvicorn/protocols/http/httptools_impl.py:496)' without its line number."""
    name, _, place = frame.partition(" (")
    return f"{name} ({place.rsplit(':', 1)[0]})" if place else name


def component(frames: Sequence[str]) -> str:
    for frame in reversed(frames):
        for name, paths in COMPONENTS:
            if any(path in frame for path in paths):
                return name
    return REST


def read_profile(folded: str) -> Profile:
    """py-spy's raw output: one line per distinct stack, frames separated by ';', then the sample count."""
    by_component: Counter[str] = Counter()
    by_own_frame: Counter[str] = Counter()
    for line in folded.splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        frames = stack.split(";")
        if any(IDLE_THREAD in frame for frame in frames):
            continue
        entry = max((index for index, frame in enumerate(frames) if LOOP_ENTRY in frame), default=-1)
        frames = frames[entry + 1 :]
        by_component[component(frames)] += int(count)
        if frames:
            by_own_frame[frame_name(frames[-1])] += int(count)
    return Profile(sum(by_component.values()), dict(by_component), by_own_frame)


def worker_pid(gate: GateProcess, workers: int) -> int:
    """The process that serves: gate itself with one worker, else one of the workers uvicorn's supervisor spawned."""
    if workers == 1:
        return gate.process.pid
    pids = worker_pids(gate)
    if not pids:
        raise RuntimeError("gate's supervisor has no workers")
    return pids[0]


def run_profile(options: Options, py_spy: str) -> tuple[Profile, float]:
    with tempfile.TemporaryDirectory(prefix="gate-profile-") as temporary:
        directory = Path(temporary)
        nginx = start_nginx(directory / "nginx", SITE, workers=NGINX_WORKERS)
        try:
            key = directory / "secret.key"
            write_key_file(key)
            browsers = directory / "browsers.lua"
            browsers.write_text(lua_script(load_keyring(key), BROWSERS_ONLY))
            with redis_server(directory) as store:
                gate = start_gate(
                    directory / "gate",
                    nginx.url,
                    "--trusted-proxy",
                    "127.0.0.1/32",
                    "--secret-file",
                    str(key),
                    "--store",
                    store,
                    "--workers",
                    str(options.workers),
                )
                try:
                    run_wrk(gate.url, options.connections, WARMUP_SECONDS, browsers)
                    raw = options.raw or directory / "profile.txt"
                    command = [py_spy, "record", "--format", "raw", "--rate", str(options.rate)]
                    command += ["--duration", str(options.duration), "--output", str(raw)]
                    command += ["--pid", str(worker_pid(gate, options.workers))]
                    with subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE) as spy:
                        result = parse_wrk(run_wrk(gate.url, options.connections, options.duration, browsers))
                        _, errors = spy.communicate()
                    if spy.returncode != 0:
                        raise RuntimeError(f"py-spy failed ({spy.returncode}): {errors.decode(errors='replace')}")
                    return read_profile(raw.read_text()), result.requests_per_second
                finally:
                    gate.stop()
        finally:
            nginx.stop()


def report(profile: Profile, requests_per_second: float, options: Options) -> str:
    lines = [
        f"py-spy, {options.duration} s at {options.rate} Hz, {profile.samples:,} samples of one gate worker "
        f"({options.workers} in all); wrk -c{options.connections}: {requests_per_second:,.0f} req/s meanwhile",
        "",
        "| component | share |",
        "|---|---:|",
    ]
    for name in [*(name for name, _ in COMPONENTS), REST]:
        lines.append(f"| {name} | {100 * profile.by_component.get(name, 0) / max(profile.samples, 1):.1f} % |")
    lines += ["", "| frame (its own samples) | share |", "|---|---:|"]
    for frame, count in profile.by_own_frame.most_common(TOP_FRAMES):
        lines.append(f"| `{frame}` | {100 * count / max(profile.samples, 1):.1f} % |")
    return "\n".join(lines)


def main(arguments: Sequence[str] | None = None) -> int:
    options = parse_options(sys.argv[1:] if arguments is None else arguments)
    py_spy = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))
    if not Path(py_spy).exists():
        print("py-spy is not installed: `make profile` installs it", file=sys.stderr)
        return 1
    if not gate.app.__file__ or not gate.app.__file__.endswith(".py"):
        print(
            "gate's request path is compiled and py-spy cannot see into it: `make profile` installs it uncompiled",
            file=sys.stderr,
        )
        return 1
    profile, requests_per_second = run_profile(options, py_spy)
    print(report(profile, requests_per_second, options))
    return 0


if __name__ == "__main__":
    sys.exit(main())
