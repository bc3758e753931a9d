"""Forward-confirmed reverse DNS against a DNS server started here: a Googlebot is a Googlebot when its address's
PTR names a host under googlebot.com or google.com and that host resolves back to the address."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest

from gate.fingerprint import Signals
from gate.policy import shipped_rules
from gate.policy.engine import Policy
from gate.policy.load import load_policy
from gate.policy.model import Action, Decision
from gate.store.memory import MemoryStore
from gate.verify import Verifier
from gate.verify.directory import KeyDirectories
from gate.verify.rdns import (
    CONFIRMED_TTL,
    FAILED_TTL,
    LOOKUPS_PER_NETWORK,
    UNCONFIRMED_TTL,
    ReverseDns,
    cache_key,
)
from tests.policy.helpers import GOOGLEBOT_UA, facts_for
from tests.support.dns_server import Zone, dns_server
from tests.support.gate_process import start_gate
from tests.support.nginx import Nginx

BINGBOT_UA = "Mozilla/5.0 (compatible; bingbot/2.0; +http://www.bing.com/bingbot.htm)"
CRAWLER = "198.51.100.20"  # outside every published range: only reverse DNS can prove it
CRAWLER_V6 = "2001:db8:4860::20"
WAIT = 0.2
TIMEOUT = 1.0


@pytest.fixture(scope="module")
def shipped() -> Policy:
    return load_policy(shipped_rules())


@pytest.fixture
def zone() -> Zone:
    return Zone()


@pytest.fixture
def resolver(zone: Zone) -> Iterator[str]:
    with dns_server(zone) as address:
        yield address


@pytest.fixture
async def verifier(resolver: str) -> AsyncIterator[Verifier]:
    store = MemoryStore()
    verifier = Verifier(store, ReverseDns(store, resolver, TIMEOUT, WAIT), KeyDirectories(WAIT))
    yield verifier
    await verifier.close()


async def settle(
    shipped: Policy, verifier: Verifier, ip: str, user_agent: str = GOOGLEBOT_UA
) -> tuple[Signals, Decision]:
    facts = facts_for("https://blog.example/essays/one.html", headers=[("User-Agent", user_agent)], ip=ip)
    signals = await verifier.settle(facts, shipped.fingerprint(facts), shipped)
    return signals, shipped.evaluate(facts, signals)


async def test_a_googlebot_whose_reverse_dns_confirms_is_verified_and_let_in(
    shipped: Policy, verifier: Verifier, zone: Zone
) -> None:
    zone.ptr(CRAWLER, "crawl-198-51-100-20.googlebot.com")
    zone.address("crawl-198-51-100-20.googlebot.com", CRAWLER)
    signals, decision = await settle(shipped, verifier, CRAWLER)
    assert (signals.verified, signals.proof) == (True, "dns")
    assert "impostor" not in signals.names
    assert (decision.action, decision.rule) == (Action.ALLOW, "verified-search-engines")


async def test_google_com_names_count_for_googlebot_and_ipv6_is_checked_with_aaaa(
    shipped: Policy, verifier: Verifier, zone: Zone
) -> None:
    zone.ptr(CRAWLER_V6, "rate-limited-proxy-1.google.com")
    zone.address("rate-limited-proxy-1.google.com", "203.0.113.1", CRAWLER_V6)
    signals, _ = await settle(shipped, verifier, CRAWLER_V6)
    assert (signals.verified, signals.proof) == (True, "dns")
    assert [kind for _, kind in zone.queries] == ["PTR", "AAAA"]
    assert zone.queries[0][0].endswith(".8.b.d.0.1.0.0.2.ip6.arpa.")


@pytest.mark.parametrize(
    ("ptr", "forward", "why"),
    [
        ("crawl-1.googlebot.com", "192.0.2.99", "does not resolve back"),  # a PTR anyone can set on their address
        ("crawl-1.googlebot.com.evil.example", CRAWLER, "is crawl-1.googlebot.com.evil.example"),
        ("notgooglebot.com", CRAWLER, "is notgooglebot.com"),
        (None, None, "has no reverse DNS name"),
    ],
)
async def test_a_googlebot_whose_reverse_dns_does_not_confirm_is_an_impostor_and_denied(
    shipped: Policy, verifier: Verifier, zone: Zone, ptr: str | None, forward: str | None, why: str
) -> None:
    if ptr is not None:
        zone.ptr(CRAWLER, ptr)
    if ptr is not None and forward is not None:
        zone.address(ptr, forward)
    signals, decision = await settle(shipped, verifier, CRAWLER)
    assert signals.verified is False
    impostor = next(finding for finding in signals.findings if finding.name == "impostor")
    assert why in impostor.detail
    assert (decision.action, decision.rule) == (Action.DENY, "impostors")


async def test_another_operators_domain_does_not_prove_a_claim(shipped: Policy, verifier: Verifier, zone: Zone) -> None:
    zone.ptr(CRAWLER, "crawl-1.googlebot.com")
    zone.address("crawl-1.googlebot.com", CRAWLER)
    signals, decision = await settle(shipped, verifier, CRAWLER, BINGBOT_UA)
    assert "impostor" in signals.names
    assert decision.action is Action.DENY


async def test_answers_are_cached_in_the_store_with_a_lifetime(shipped: Policy, verifier: Verifier, zone: Zone) -> None:
    zone.ptr(CRAWLER, "crawl-1.googlebot.com")
    zone.address("crawl-1.googlebot.com", CRAWLER)
    await settle(shipped, verifier, CRAWLER)
    asked = len(zone.queries)
    for _ in range(3):
        signals, _ = await settle(shipped, verifier, CRAWLER)
        assert signals.verified
    assert len(zone.queries) == asked == 2  # one PTR, one A: every later request reads the store
    ttl = await verifier.store.ttl(cache_key(CRAWLER))
    assert ttl is not None and CONFIRMED_TTL - 5 < ttl <= CONFIRMED_TTL
    await settle(shipped, verifier, "192.0.2.44")  # no PTR: remembered for less long
    ttl = await verifier.store.ttl(cache_key("192.0.2.44"))
    assert ttl is not None and UNCONFIRMED_TTL - 5 < ttl <= UNCONFIRMED_TTL


async def test_a_slow_lookup_leaves_the_first_request_unconfirmed_and_proves_the_next(
    shipped: Policy, verifier: Verifier, zone: Zone
) -> None:
    zone.ptr(CRAWLER, "crawl-1.googlebot.com")
    zone.address("crawl-1.googlebot.com", CRAWLER)
    zone.slow_ptr(CRAWLER, 0.5)
    started = time.monotonic()
    signals, decision = await settle(shipped, verifier, CRAWLER)
    assert time.monotonic() - started < 0.5  # the request did not wait for the answer
    assert signals.verified is False
    assert "unconfirmed" in signals.names and "impostor" not in signals.names
    assert (decision.action, decision.rule) == (Action.CHALLENGE, "unverified-search-engine-claims")
    await asyncio.sleep(0.6)  # the lookup went on without the request
    signals, decision = await settle(shipped, verifier, CRAWLER)
    assert (signals.verified, decision.action) == (True, Action.ALLOW)


async def test_a_resolver_that_never_answers_costs_a_request_the_wait_and_no_verdict(
    shipped: Policy, verifier: Verifier, zone: Zone
) -> None:
    zone.silence_ptr(CRAWLER)
    started = time.monotonic()
    signals, decision = await settle(shipped, verifier, CRAWLER)
    assert time.monotonic() - started < TIMEOUT
    assert "unconfirmed" in signals.names and "impostor" not in signals.names
    assert decision.action is Action.CHALLENGE
    await asyncio.sleep(TIMEOUT + 0.2)  # the lookup times out and the failure is cached briefly
    signals, decision = await settle(shipped, verifier, CRAWLER)
    unconfirmed = next(finding for finding in signals.findings if finding.name == "unconfirmed")
    assert "reverse DNS failed" in unconfirmed.detail
    ttl = await verifier.store.ttl(cache_key(CRAWLER))
    assert ttl is not None and ttl <= FAILED_TTL


async def test_requests_that_claim_nothing_verifiable_never_touch_dns(
    shipped: Policy, verifier: Verifier, zone: Zone
) -> None:
    for user_agent in ("curl/8.5.0", "Mozilla/5.0 (compatible; SomeNewBot/0.1)"):
        await settle(shipped, verifier, CRAWLER, user_agent)
    google_address = "66.249.66.1"  # inside Google's published ranges: proven without a lookup
    signals, _ = await settle(shipped, verifier, google_address)
    assert (signals.verified, signals.proof) == (True, "network")
    assert zone.queries == []


def test_a_running_gate_verifies_googlebot_by_reverse_dns(
    tmp_path: Path, nginx: Nginx, zone: Zone, resolver: str
) -> None:
    """The whole way: gate behind a trusted proxy, its --resolver the local DNS server."""
    zone.ptr(CRAWLER, "crawl-198-51-100-20.googlebot.com")
    zone.address("crawl-198-51-100-20.googlebot.com", CRAWLER)
    zone.ptr("192.0.2.66", "crawl-192-0-2-66.googlebot.com")  # a PTR its owner set; the name does not resolve back
    gate = start_gate(tmp_path, nginx.url, "--trusted-proxy", "127.0.0.1/32", "--resolver", resolver)
    try:

        def status(ip: str) -> int:
            headers = {"User-Agent": GOOGLEBOT_UA, "X-Forwarded-For": ip}
            return httpx.get(gate.url + "/page.html", headers=headers).status_code

        assert status(CRAWLER) == 200
        assert gate.access_lines("/page.html")[-1]["proof"] == "dns"
        assert status("192.0.2.66") == 403
        assert status("192.0.2.67") == 403  # no PTR at all
        metrics = httpx.get(gate.metrics_url + "/metrics").text
        assert 'gate_verifications_total{method="dns",result="verified"} 1.0' in metrics
        assert 'gate_verifications_total{method="dns",result="impostor"} 2.0' in metrics
    finally:
        gate.stop()


async def test_a_ptr_name_that_is_no_host_name_proves_nothing_now_or_from_the_cache(
    shipped: Policy, verifier: Verifier, zone: Zone
) -> None:
    """A PTR target under the attacker's own zone whose label holds "|" (`googlebot.com|x.attacker.example`) must
    not read as googlebot.com, from the lookup or from the cached answer."""
    trick = "googlebot.com|x.attacker.example"
    zone.ptr(CRAWLER, trick)
    zone.address(trick, CRAWLER)
    for _ in range(2):  # the lookup, then the store's answer
        signals, decision = await settle(shipped, verifier, CRAWLER)
        assert (signals.verified, decision.action) == (False, Action.DENY)
        assert "impostor" in signals.names


async def test_one_network_claiming_a_crawler_from_address_after_address_gets_a_budget_of_lookups(
    shipped: Policy, verifier: Verifier, zone: Zone
) -> None:
    for last in range(1, LOOKUPS_PER_NETWORK + 1):
        signals, _ = await settle(shipped, verifier, f"192.0.2.{last}")
        assert "impostor" in signals.names  # looked up: no PTR
    asked = len(zone.queries)
    signals, decision = await settle(shipped, verifier, f"192.0.2.{LOOKUPS_PER_NETWORK + 1}")
    assert "unconfirmed" in signals.names and decision.action is Action.CHALLENGE
    assert len(zone.queries) == asked  # no lookup for this one
    signals, _ = await settle(shipped, verifier, "198.51.100.99")  # another network still has its budget
    assert "impostor" in signals.names
