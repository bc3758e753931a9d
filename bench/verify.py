"""What verifying a crawler costs, in-process: the verify step for a request that claims nothing (every browser),
a Web Bot Auth signature checked against a cached key directory, and forward-confirmed reverse DNS, answered from
the store's cache and looked up fresh against a DNS server on loopback.

The DNS server and key directory are the tests' own (tests/support), so nothing leaves the machine.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

from gate.check import NO_PROXIES, scope_for
from gate.facts import Facts
from gate.fingerprint import Signals
from gate.policy.load import load_policy
from gate.store.memory import MemoryStore
from gate.verify import Verifier
from gate.verify.directory import KeyDirectories
from gate.verify.rdns import ReverseDns
from tests.policy.helpers import CHROME_UA, GOOGLEBOT_UA, browser_headers, write_rules
from tests.support.dns_server import Zone, dns_server
from tests.support.http_server import http_server
from tests.support.tls import self_signed_certificate
from tests.support.web_bot_auth import WELL_KNOWN, Reply, Routes, Signer, directory_body

PAGE = "https://blog.example/essays/one.html"


def facts(headers: list[tuple[str, str]], ip: str = "203.0.113.7") -> Facts:
    return Facts.from_scope(scope_for("GET", PAGE, ip, headers), NO_PROXIES)


async def per_call(call: Callable[[], Awaitable[Signals]], count: int) -> float:
    """Median of five rounds, in microseconds per call."""
    rounds = []
    for _ in range(5):
        started = time.perf_counter()
        for _ in range(count):
            await call()
        rounds.append((time.perf_counter() - started) / count * 1e6)
    return statistics.median(rounds)


async def measure(count: int) -> None:
    with tempfile.TemporaryDirectory() as temporary:
        work = Path(temporary)
        certificate = self_signed_certificate(work)
        routes, signer, zone = Routes(), Signer(), Zone()
        routes.replies = {WELL_KNOWN: Reply(body=directory_body([signer]))}
        zone.ptr("198.51.100.20", "crawl-198-51-100-20.googlebot.com")
        zone.address("crawl-198-51-100-20.googlebot.com", "198.51.100.20")
        with http_server(routes.handler(), tls=certificate.server_context()) as origin, dns_server(zone) as resolver:
            rules = write_rules(
                work, f'import: [shipped:default.yaml]\nverified:\n  ChatGPT Agent: {{signature: ["{origin}"]}}\n'
            )
            policy = load_policy(rules)
            store = MemoryStore()
            verifier = Verifier(
                store,
                ReverseDns(store, resolver, 2.0, 2.0),
                KeyDirectories(5.0, allow_private=True, tls=certificate.client_context()),
            )
            try:
                browser = facts(browser_headers())
                browser_signals = policy.fingerprint(browser)
                signed = facts([("User-Agent", CHROME_UA), *signer.sign("blog.example", origin, nonce=False)])
                signed_signals = policy.fingerprint(signed)
                googlebot = facts([("User-Agent", GOOGLEBOT_UA)], "198.51.100.20")
                googlebot_signals = policy.fingerprint(googlebot)

                async def settle_browser() -> Signals:
                    return await verifier.settle(browser, browser_signals, policy)

                async def settle_signed() -> Signals:
                    return await verifier.settle(signed, signed_signals, policy)

                async def settle_googlebot() -> Signals:
                    return await verifier.settle(googlebot, googlebot_signals, policy)

                first_fetch = time.perf_counter()
                assert (await settle_signed()).signature == "verified"
                first_fetch = time.perf_counter() - first_fetch
                fresh = []
                for last in range(1, 21):  # a new address each time: nothing cached
                    address = f"10.{last}.0.1"  # each in a network of its own: lookups are budgeted per network
                    zone.ptr(address, f"crawl-{last}.googlebot.com")
                    zone.address(f"crawl-{last}.googlebot.com", address)
                    request = facts([("User-Agent", GOOGLEBOT_UA)], address)
                    started = time.perf_counter()
                    settled = await verifier.settle(request, policy.fingerprint(request), policy)
                    fresh.append((time.perf_counter() - started) * 1000)
                    assert settled.proof == "dns"
                assert (await settle_googlebot()).proof == "dns"
                print(f"verify step, a browser (claims nothing):     {await per_call(settle_browser, count):8.2f} µs")
                print(f"Web Bot Auth, cached directory, no nonce:    {await per_call(settle_signed, count):8.2f} µs")
                print(f"reverse DNS, answered from the store:        {await per_call(settle_googlebot, count):8.2f} µs")
                print(f"reverse DNS, fresh lookup (PTR + A), median: {statistics.median(fresh):8.2f} ms (loopback)")
                print(f"key directory, first fetch (TLS, loopback):  {first_fetch * 1000:8.2f} ms")
            finally:
                await verifier.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", 1)[0])
    parser.add_argument("--count", type=int, default=2000, help="calls per round")
    asyncio.run(measure(parser.parse_args().count))


if __name__ == "__main__":
    main()
