"""`gate audit` on a generated log of a million lines (by default): lines per second and peak memory.

The log mixes what a small site sees: readers in browsers, declared AI crawlers, an impostor Googlebot, one address
scraping fast, and a scraper rotating through many addresses (every rotating request from a new one, the case that
would grow per-client structures without bounds).
"""

from __future__ import annotations

import argparse
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

CHROME = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/156.0.0.0 Safari/537.36"
AGENTS = [
    CHROME,
    CHROME,
    CHROME,
    "Mozilla/5.0 AppleWebKit/537.36 (KHTML, like Gecko; compatible; GPTBot/1.2; +https://openai.com/gptbot)",
    "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)",
    "python-requests/2.32.3",
]
START = 1_795_800_000


def write_log(path: Path, lines: int) -> None:
    with path.open("w") as log:
        for number in range(lines):
            moment = START + number / 10
            stamp = time.strftime("%d/%b/%Y:%H:%M:%S +0000", time.gmtime(moment))
            if number % 5 == 0:  # the rotating scraper: a new address every time
                address = f"10.{number // 65536 % 256}.{number // 256 % 256}.{number % 256}"
            else:
                address = f"198.51.{number % 7}.{number % 200}"
            agent = AGENTS[number % len(AGENTS)]
            log.write(f'{address} - - [{stamp}] "GET /p/{number % 20000} HTTP/1.1" 200 {number % 9000} "-" "{agent}"\n')


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", 1)[0])
    parser.add_argument("--lines", type=int, default=1_000_000)
    options = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="gate-audit-bench-") as temporary:
        log = Path(temporary) / "access.log"
        write_log(log, options.lines)
        started = time.perf_counter()
        subprocess.run(
            [sys.executable, "-m", "gate", "audit", str(log), "--json", str(Path(temporary) / "report.json")],
            check=True,
            stdout=subprocess.DEVNULL,
        )
        elapsed = time.perf_counter() - started
        peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
        size = log.stat().st_size / 1024 / 1024
    print(f"gate audit: {options.lines:,} lines ({size:,.0f} MiB) in {elapsed:,.1f} s")
    print(f"  {options.lines / elapsed:,.0f} lines/s, peak memory {peak:,.0f} MiB")


if __name__ == "__main__":
    main()
