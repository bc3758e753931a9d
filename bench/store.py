"""What the shared store costs: gate with a rate-limit guard on every request, memory store against Redis, with
nginx alone in the same run; Redis round trips per request; Redis memory per tracked client.

    python -m bench.store [--duration 10] [--rounds 3] [--connections 64]
"""

from __future__ import annotations

import argparse
import asyncio
import re
import tempfile
from contextlib import ExitStack
from pathlib import Path

import httpx
import redis

from bench.proxy import NGINX_DIRECT, SITE, Options, Target, markdown_table, measure_rounds, summarise
from gate.check import NO_PROXIES, scope_for
from gate.facts import Facts
from gate.fingerprint import Signals
from gate.keys import write_key_file
from gate.policy.model import Limit
from gate.store import Quota, RedisStore
from gate.store.redis import KEY_PREFIX
from gate.throttle import quota_key
from tests.support.gate_process import start_gate
from tests.support.nginx import start_nginx
from tests.support.redis_server import redis_server

# Every request is charged against one guard that never refuses: the figure is the cost of the charge itself.
RULES = """
agents: [shipped:agents/*.yaml]
limits:
  per-client: {rate: 1000000/s, burst: 1000000, per: ip}
guards: [per-client]
default: {action: allow}
"""
TRACKED_CLIENTS = 1000


def evalsha_calls(client: redis.Redis) -> int:
    stats = client.info("commandstats")
    return int(stats.get("cmdstat_evalsha", {}).get("calls", 0))


def requests_counted(metrics_url: str) -> float:
    text = httpx.get(metrics_url + "/metrics").text
    return sum(float(value) for value in re.findall(r"^gate_requests_total\{[^}]*\} (\S+)$", text, re.MULTILINE))


def fallback_calls(metrics_url: str) -> float:
    """Store calls the in-process fallback answered (Redis failed or missed --store-timeout)."""
    text = httpx.get(metrics_url + "/metrics").text
    return sum(float(value) for value in re.findall(r"^gate_store_errors_total\{[^}]*\} (\S+)$", text, re.MULTILINE))


async def bytes_per_client(url: str) -> float:
    """Redis memory of the rate-limit key one tracked client leaves (MEMORY USAGE, averaged), named as gate names
    it (with the client's hash tag)."""
    limit = Limit("per-client", 60, 60.0, 100)
    keys = []
    for number in range(TRACKED_CLIENTS):
        facts = Facts.from_scope(
            scope_for("GET", "http://bench/", f"198.51.{number // 256}.{number % 256}", []), NO_PROXIES
        )
        keys.append(quota_key(limit, "ip", facts, Signals("browser"), None))
    store = RedisStore.from_url(url)
    try:
        for key in keys:
            await store.rate_limit([Quota(key, limit.interval, limit.burst)])
    finally:
        await store.close()
    with redis.Redis.from_url(url) as client:
        sizes = [client.memory_usage(KEY_PREFIX + key) or 0 for key in keys]
    return sum(sizes) / len(sizes)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--duration", type=int, default=10)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--connections", type=int, default=64)
    arguments = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="gate-bench-store-") as scratch, ExitStack() as running:
        directory = Path(scratch)
        options = Options(arguments.duration, arguments.rounds, arguments.connections, directory / "results.json")
        (directory / "rules.yaml").write_text(RULES)
        key = directory / "secret.key"
        write_key_file(key)
        redis_url = running.enter_context(redis_server(directory))
        nginx = start_nginx(directory / "nginx", SITE, workers=2)
        running.callback(nginx.stop)
        common = ("--rules", str(directory / "rules.yaml"), "--secret-file", str(key))
        memory = start_gate(directory / "memory", nginx.url, *common)
        running.callback(memory.stop)
        shared = start_gate(directory / "redis", nginx.url, *common, "--store", redis_url)
        running.callback(shared.stop)
        targets = [
            Target(NGINX_DIRECT, nginx.url),
            Target("gate, memory store, guard on every request", memory.url),
            Target("gate, Redis store, guard on every request", shared.url),
        ]
        with redis.Redis.from_url(redis_url) as client:
            calls_before, requests_before = evalsha_calls(client), requests_counted(shared.metrics_url)
            measurements = measure_rounds(targets, options)
            calls = evalsha_calls(client) - calls_before
            requests = requests_counted(shared.metrics_url) - requests_before
            fell_back = fallback_calls(shared.metrics_url)
        per_client = asyncio.run(bytes_per_client(redis_url))
    print(f"wrk -t2 -c{options.connections} -d{options.duration}s, {options.rounds} interleaved rounds, 1 gate worker")
    print(markdown_table(summarise(targets, measurements, NGINX_DIRECT), "nginx direct"))
    print(f"\nRedis round trips per request (EVALSHA calls / requests decided): {calls / max(requests, 1):.3f}")
    print(f"Redis memory per tracked client (one rate-limit key, MEMORY USAGE): {per_client:.0f} bytes")
    print(f"Store calls answered by the fallback (missed the 25 ms deadline or failed): {fell_back:.0f}")


if __name__ == "__main__":
    main()
