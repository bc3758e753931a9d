"""Decision time in-process: Facts from an ASGI scope, fingerprint and policy evaluation, per request.

Requests are the captured header profiles (tests/data/headers) with the User-Agents of the corpus
(tests/data/user-agents) put into a Chromium navigation. Two passes with the shipped rules: "cold" (every User-Agent
seen for the first time, caches empty: what a scraper rotating User-Agents costs) and "warm" (the same requests
again). Then how the warm figure grows with the rules: the shipped rules behind 1,000 rules of the owner's that
match none of the requests (so every one is tried), and behind one rule on a network list of 100,000 prefixes.
"""

from __future__ import annotations

import argparse
import gc
import ipaddress
import json
import random
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from gate.check import NO_PROXIES
from gate.facts import Facts
from gate.net import address_of
from gate.policy import shipped_rules
from gate.policy.engine import Policy
from gate.policy.load import load_policy

DATA = Path(__file__).resolve().parent.parent / "tests" / "data"
ENTRY = "default.yaml"
OWNER_RULES = 1000
LISTED_PREFIXES = 100_000


def corpus_user_agents() -> list[str]:
    agents: list[str] = []
    for path in sorted((DATA / "user-agents").glob("*/*.txt")):
        agents += [line for line in path.read_text(encoding="utf-8").splitlines() if line and not line.startswith("#")]
    return list(dict.fromkeys(agents))


def profile(name: str) -> list[tuple[bytes, bytes]]:
    capture = json.loads((DATA / "headers" / f"{name}.json").read_text())
    return [(key.lower().encode("latin-1"), value.encode("latin-1")) for key, value in capture["headers"]]


def scopes(limit: int) -> list[dict[str, Any]]:
    """Realistic requests: corpus User-Agents in a browser navigation, plus every captured profile as it is."""
    navigation = profile("chromium-headful-navigation")
    requests = []
    for number, user_agent in enumerate(corpus_user_agents()[:limit]):
        headers = [(key, user_agent.encode("latin-1", "replace")) if key == b"user-agent" else (key, value)
                   for key, value in navigation]  # fmt: skip
        requests.append(scope(headers, f"198.51.{number // 256 % 256}.{number % 256}"))
    for path in sorted((DATA / "headers").glob("*.json")):
        requests.append(scope(profile(path.stem), "203.0.113.9"))
    return requests


def scope(headers: list[tuple[bytes, bytes]], ip: str) -> dict[str, Any]:
    return {"type": "http", "http_version": "1.1", "method": "GET", "scheme": "https", "path": "/essays/one.html",
            "raw_path": b"/essays/one.html", "query_string": b"", "headers": headers, "client": (ip, 1)}  # fmt: skip


def decide_once(policy: Policy, request: dict[str, Any]) -> int:
    started = time.perf_counter_ns()
    facts = Facts.from_scope(request, NO_PROXIES)
    policy.evaluate(facts, policy.fingerprint(facts))
    return time.perf_counter_ns() - started


def percentiles(samples: list[int]) -> dict[str, float]:
    ordered = sorted(samples)

    def microseconds_at(share: float) -> float:
        return ordered[min(len(ordered) - 1, int(share * len(ordered)))] / 1000

    return {
        "p50_us": microseconds_at(0.50),
        "p90_us": microseconds_at(0.90),
        "p99_us": microseconds_at(0.99),
        "mean_us": statistics.mean(ordered) / 1000,
    }


def clear_caches(policy: Policy) -> None:
    policy.fingerprinter.catalog.cache.cache_clear()
    address_of.cache_clear()


def many_rules(directory: Path, count: int) -> Path:
    """The shipped rules behind `count` rules of the owner's, of every kind of condition, none matching the corpus."""
    kinds: list[Callable[[int], dict[str, Any]]] = [
        lambda n: {"path": [f"/private-{n}/**"]},
        lambda n: {"user_agent": f"(?i)scraper-{n}/"},
        lambda n: {"cidr": [f"10.{n // 256 % 256}.{n % 256}.0/24"]},
        lambda n: {"header": {f"x-probe-{n}": True}},
        lambda n: {"all": [{"method": ["DELETE"]}, {"path_regex": f"^/api/v{n}/"}]},
    ]
    rules = [{"name": f"owner-{n}", "match": kinds[n % len(kinds)](n), "action": "deny"} for n in range(count)]
    path = directory / "many-rules.yaml"
    path.write_text(json.dumps({"version": 1, "import": [f"shipped:{ENTRY}"], "rules": rules}))
    return path


def many_prefixes(directory: Path, count: int) -> Path:
    """The shipped rules behind a rule on a network list of `count` prefixes from 10.0.0.0/8 (the corpus comes
    from 198.51.0.0/16 and 203.0.113.0/24)."""
    picked = random.Random(7).sample(range(1 << 16), count) if count <= 1 << 16 else range(count)
    prefixes = [str(ipaddress.ip_network((10 << 24 | (n % (1 << 22)) << 2, 30))) for n in picked]
    (directory / "many.txt").write_text("\n".join(prefixes) + "\n")
    path = directory / "many-prefixes.yaml"
    rules = [{"name": "listed", "match": {"network": ["many"]}, "action": "deny"}]
    path.write_text(
        json.dumps({"version": 1, "import": [f"shipped:{ENTRY}"], "networks": {"many": "many.txt"}, "rules": rules})
    )
    return path


def warm_figures(policy: Policy, requests: list[dict[str, Any]], rounds: int) -> dict[str, float]:
    for request in requests:  # fill the caches
        decide_once(policy, request)
    return percentiles([decide_once(policy, request) for _ in range(rounds) for request in requests])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--requests", type=int, default=20000, help="corpus User-Agents to use (default 20000)")
    parser.add_argument("--rounds", type=int, default=3, help="warm passes over the requests (default 3)")
    options = parser.parse_args()
    policy = load_policy(shipped_rules())
    requests = scopes(options.requests)
    gc.collect()
    gc.freeze()  # keep collector pauses of the set-up out of the figures
    clear_caches(policy)
    cold = [decide_once(policy, request) for request in requests]
    warm = [decide_once(policy, request) for _ in range(options.rounds) for request in requests]
    print(f"decision time with the shipped rules, {len(requests)} requests "
          f"({len(policy.rules)} rules, {len(policy.fingerprinter.catalog.agents)} agents)")  # fmt: skip
    print("| pass | p50 µs | p90 µs | p99 µs | mean µs |")
    print("|---|---:|---:|---:|---:|")
    for name, samples in (("cold (first sight of each User-Agent)", cold), ("warm (caches filled)", warm)):
        print_row(name, percentiles(samples))
    baseline = percentiles(warm)["p50_us"]
    with tempfile.TemporaryDirectory(prefix="gate-decide-") as temporary:
        directory = Path(temporary)
        print()
        print("| warm, with | p50 µs | p90 µs | p99 µs | mean µs | p50 vs the shipped rules |")
        print("|---|---:|---:|---:|---:|---:|")
        for name, path in (
            (f"{OWNER_RULES:,} more rules", many_rules(directory, OWNER_RULES)),
            (f"a network list of {LISTED_PREFIXES:,} prefixes", many_prefixes(directory, LISTED_PREFIXES)),
        ):
            figures = warm_figures(load_policy(path), requests, options.rounds)
            print_row(name, figures, f" {figures['p50_us'] / baseline:.2f}x |")


def print_row(name: str, figures: dict[str, float], extra: str = "") -> None:
    print(f"| {name} | {figures['p50_us']:.1f} | {figures['p90_us']:.1f} | {figures['p99_us']:.1f} | "
          f"{figures['mean_us']:.1f} |{extra}")  # fmt: skip


if __name__ == "__main__":
    main()
