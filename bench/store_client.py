"""Client CPU per shared-store call, in-process: `python -m bench.store_client [--calls N]`.

Times N sequential and N concurrent (in waves of --concurrency) `rate_limit` calls, the request path's one store
call (a ban key and two quotas, as a browser with a pass token costs), through FallbackStore(RedisStore) against a
private redis-server. Reports this process's CPU time per call (process_time: Redis's own CPU is not counted) and
wall time per call; the best of --rounds rounds, as the machine is shared.
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import time
from contextlib import ExitStack
from pathlib import Path

import uvloop

from gate.store import FallbackStore, Quota, RedisStore
from tests.support.redis_server import redis_server

QUOTAS = [Quota("{203.0.113.0/24}client", 0.01, 1_000_000), Quota("{203.0.113.0/24}pass", 0.01, 1_000_000)]
BAN_KEY = "{203.0.113.0/24}ban"


async def measure(
    url: str, calls: int, concurrency: int, rounds: int, fallback: bool
) -> dict[str, tuple[float, float]]:
    store: FallbackStore | RedisStore = RedisStore.from_url(url)
    if fallback:
        store = FallbackStore(store, timeout=1.0)
    best: dict[str, tuple[float, float]] = {}
    try:
        await store.ping()
        for _ in range(200):  # warm up: connections, scripts loaded
            await store.rate_limit(QUOTAS, BAN_KEY)
        for _ in range(rounds):
            cpu, wall = time.process_time(), time.perf_counter()
            for _ in range(calls):
                verdicts = await store.rate_limit(QUOTAS, BAN_KEY)
                assert not verdicts.fallback
            sequential = ((time.process_time() - cpu) / calls, (time.perf_counter() - wall) / calls)
            cpu, wall = time.process_time(), time.perf_counter()
            for _ in range(calls // concurrency):
                answers = await asyncio.gather(*(store.rate_limit(QUOTAS, BAN_KEY) for _ in range(concurrency)))
                assert not any(answer.fallback for answer in answers)
            done = calls // concurrency * concurrency
            concurrent = ((time.process_time() - cpu) / done, (time.perf_counter() - wall) / done)
            for name, figures in (("sequential", sequential), ("concurrent", concurrent)):
                if name not in best or figures[0] < best[name][0]:
                    best[name] = figures
    finally:
        await store.close()
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=5000)
    parser.add_argument("--concurrency", type=int, default=50)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--url", help="an existing Redis (default: a private redis-server)")
    arguments = parser.parse_args()
    print(f"{arguments.calls} rate_limit calls, best of {arguments.rounds} rounds (uvloop)")
    with tempfile.TemporaryDirectory() as directory, ExitStack() as stack:
        url = arguments.url or stack.enter_context(redis_server(Path(directory)))
        for fallback in (True, False):
            best = uvloop.run(measure(url, arguments.calls, arguments.concurrency, arguments.rounds, fallback))
            print("FallbackStore(RedisStore)" if fallback else "RedisStore alone")
            for name, (cpu, wall) in best.items():
                extra = f" ({arguments.concurrency} at once)" if name == "concurrent" else ""
                print(f"  {name}{extra}: {cpu * 1e6:.1f} µs CPU per call, {wall * 1e6:.1f} µs wall per call")


if __name__ == "__main__":
    main()
