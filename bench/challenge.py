"""The challenge's costs: solve time in headless Chromium per difficulty, the solver's hash rate against native
SHA-256 (`openssl speed`), and server-side verifications per second on one core.

Solve times come from the page itself (`elapsed_ms`, which includes starting the workers) and from the browser's
point of view (challenge page requested to original page loaded), each the median of --runs solves.
"""

from __future__ import annotations

import argparse
import os
import re
import statistics
import subprocess
import tempfile
import time
from pathlib import Path
from urllib.parse import parse_qs

from playwright.sync_api import ConsoleMessage, Request

from gate.challenge.pow import Challenge, check, work_done
from gate.keys import KeyRing, SecretKey
from tests.challenge.test_pow import NOW, facts
from tests.support.browser import launched_chromium
from tests.support.gate_process import start_gate
from tests.support.nginx import start_nginx

SITE = Path(__file__).resolve().parent.parent / "tests" / "data" / "site"
DIFFICULTIES = (12, 14, 16, 18, 20, 22)


def rules(difficulties: tuple[int, ...]) -> str:
    """One challenge rule per difficulty, chosen by the query parameter d."""
    lines = ["agents: [shipped:agents/*.yaml]", "rules:"]
    lines += [
        f'  - {{name: d{d}, match: {{query: {{d: "^{d}$"}}}}, action: challenge, difficulty: {d}}}'
        for d in difficulties
    ]
    return "\n".join([*lines, "default: {action: allow}", ""])


STATS = re.compile(r"gate challenge: (\d+) hashes in (\d+) ms: (\d+) hashes/s, (\d+)")


class Solve:
    """What one page load showed: the solution the page posted and the speed it logged."""

    def __init__(self) -> None:
        self.posted: list[str] = []
        self.console: list[str] = []

    def on_request(self, request: Request) -> None:
        if request.method == "POST":
            self.posted.append(request.post_data or "")

    def on_console(self, message: ConsoleMessage) -> None:
        self.console.append(message.text)


def solve_times(url: str, difficulties: tuple[int, ...], runs: int) -> dict[int, tuple[float, float, float, int]]:
    """difficulty -> median elapsed_ms reported by the page, median wall ms, median hashes/s per worker, workers."""
    results = {}
    with launched_chromium() as browser:
        for difficulty in difficulties:
            elapsed, wall, rates = [], [], []
            workers = 0
            for run in range(runs):
                context = browser.new_context()
                page = context.new_page()
                solve = Solve()
                page.on("request", solve.on_request)
                page.on("console", solve.on_console)
                started = time.perf_counter()
                page.goto(f"{url}/start.html?d={difficulty}&run={run}")  # the challenge page, at the page's URL
                page.wait_for_selector("#next", timeout=120_000)  # the page itself, after the solve
                wall.append((time.perf_counter() - started) * 1000)
                elapsed.append(float(parse_qs(solve.posted[-1])["elapsed_ms"][0]))
                stats = next((match for text in solve.console if (match := STATS.search(text))), None)
                if stats:
                    workers = int(stats.group(4))
                    rates.append(int(stats.group(3)) / workers)
                context.close()
            results[difficulty] = (
                statistics.median(elapsed),
                statistics.median(wall),
                statistics.median(rates or [0.0]),
                workers,
            )
    return results


def native_sha256_rate() -> float | None:
    """Hashes per second of `openssl speed sha256` on 64-byte inputs, one core."""
    try:
        output = subprocess.run(["openssl", "speed", "-seconds", "2", "sha256"], capture_output=True, text=True,
                                timeout=60, check=True).stdout  # fmt: skip
    except (OSError, subprocess.SubprocessError):
        return None
    match = re.search(r"^sha256\s+([\d.]+)k\s+([\d.]+)k", output, re.MULTILINE)
    return float(match.group(2)) * 1000 / 64 if match else None


def verifications_per_second(seconds: float = 2.0) -> float:
    keys = KeyRing((SecretKey(b"k" * 32),))
    client = facts()
    token = Challenge.new("js", client, 16, "bench", "/essays/", NOW).seal(keys)
    nonce = next(str(n) for n in range(10**7) if work_done(token, str(n), 16))
    count, started = 0, time.perf_counter()
    while time.perf_counter() - started < seconds:
        check(keys, token, client, NOW + 1, nonce)
        count += 1
    return count / (time.perf_counter() - started)


def screenshots(url: str, folder: Path) -> None:
    """The page mid-solve, light and dark, for the README (a 26-bit challenge keeps it on screen)."""
    with launched_chromium() as browser:
        for scheme in ("light", "dark"):
            context = browser.new_context(color_scheme=scheme, viewport={"width": 720, "height": 660})
            page = context.new_page()
            page.goto(f"{url}/start.html?d=26")
            page.wait_for_timeout(1500)
            page.screenshot(path=str(folder / f"challenge-{scheme}.png"))
            context.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=10, help="solves per difficulty (default 10)")
    parser.add_argument("--screenshots", type=Path, metavar="DIR", help="only save the page's screenshots into DIR")
    options = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="gate-bench-challenge-") as scratch:
        directory = Path(scratch)
        (directory / "rules.yaml").write_text(rules((*DIFFICULTIES, 26)))
        nginx = start_nginx(directory / "nginx", SITE)
        gate = start_gate(directory / "gate", nginx.url, "--rules", str(directory / "rules.yaml"),
                          "--contact", "webmaster@blog.example")  # fmt: skip
        try:
            if options.screenshots:
                screenshots(gate.url, options.screenshots)
                return
            times = solve_times(gate.url, DIFFICULTIES, options.runs)
        finally:
            gate.stop()
            nginx.stop()
    print(f"solve time in headless Chromium, median of {options.runs} (nproc {os.cpu_count()})")
    print("| difficulty (bits) | expected hashes | page-reported ms | request to page ms | hashes/s/worker | workers |")
    print("|---:|---:|---:|---:|---:|---:|")
    for difficulty, (elapsed, wall, rate, workers) in times.items():
        print(f"| {difficulty} | {2**difficulty:,} | {elapsed:.0f} | {wall:.0f} | {rate / 1e6:.2f} M | {workers} |")
    native = native_sha256_rate()
    print(f"\nnative SHA-256 (openssl speed, 64-byte inputs, one core): {native / 1e6:.2f} M hashes/s" if native
          else "\nopenssl not available")  # fmt: skip
    print(
        f"server-side verifications (one SHA-256 + one HMAC + parsing), one core: {verifications_per_second():,.0f}/s"
    )


if __name__ == "__main__":
    main()
