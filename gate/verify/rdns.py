"""Forward-confirmed reverse DNS: an address belongs to a name when the address's PTR record names it and the name
resolves back to the address. Googlebot, Bingbot, Applebot and others document this check for their crawlers.

Answers are cached in the shared store (every instance benefits from one lookup), and a request waits for an
uncached lookup at most `wait` seconds: the lookup goes on and the next request from that address uses its answer.
"""

from __future__ import annotations

import asyncio
import ipaddress
import json
import logging
import re
from collections import OrderedDict
from dataclasses import dataclass

import dns.asyncresolver
import dns.exception
import dns.name
import dns.nameserver
import dns.resolver
import dns.reversename

from gate.budget import Budget
from gate.store import Store, StoreError

log = logging.getLogger("gate.verify")

DEFAULT_TIMEOUT = 2.0  # seconds one verification (PTR and forward lookups) may take in all
DEFAULT_WAIT = 0.2  # seconds a request waits for an uncached answer
CONFIRMED_TTL = 86400.0  # the operators move addresses between crawlers rarely; a day is what the answer is worth
UNCONFIRMED_TTL = 3600.0  # no PTR, or a name that does not resolve back: an hour before asking again
FAILED_TTL = 60.0  # the resolver failed (timeout, SERVFAIL): neither proof nor disproof, retried soon
MAX_PENDING = 256  # lookups in flight per instance; beyond it a claim waits for a slot (and is not proven yet)
MAX_NAMES = 4  # PTR names forward-checked per address
LOOKUPS_PER_NETWORK = 20  # new addresses looked up per minute per client network (/24, /64)
MAX_NETWORKS = 4096  # networks whose budget is remembered
HOSTNAME = re.compile(r"(?:[a-z0-9_](?:[a-z0-9_-]{0,61}[a-z0-9_])?\.)+[a-z0-9_-]{1,63}")


@dataclass(frozen=True, slots=True)
class ReverseName:
    """What reverse DNS says of an address: its forward-confirmed names, or why there are none."""

    names: tuple[str, ...] = ()  # lower-case, without the final dot
    ptr: tuple[str, ...] = ()  # what the PTR records named, confirmed or not (for the explanation)
    failure: str | None = None  # set when the resolver failed: the address is neither proven nor disproven

    def encode(self) -> bytes:
        return json.dumps([self.names, self.ptr, self.failure]).encode()

    @classmethod
    def decode(cls, raw: bytes) -> ReverseName | None:
        """The cached answer; None when the entry is not one (it is then looked up again)."""
        try:
            names, ptr, failure = json.loads(raw)
            return cls(tuple(map(str, names)), tuple(map(str, ptr)), None if failure is None else str(failure))
        except (ValueError, TypeError):
            return None

    def describe(self) -> str:
        if self.failure is not None:
            return f"reverse DNS failed ({self.failure})"
        if not self.ptr:
            return "the address has no reverse DNS name"
        if not self.names:
            return f"its reverse DNS name {self.ptr[0]} does not resolve back to it"
        return f"its reverse DNS name is {self.names[0]}"


def cache_key(ip: str) -> str:
    return f"rdns:{ip}"


class ReverseDns:
    def __init__(self, store: Store, resolver: str | None, timeout: float, wait: float) -> None:
        """`resolver` is "HOST" or "HOST:PORT" ("[v6]:PORT"), or None for the system's (/etc/resolv.conf)."""
        self.store = store
        self.timeout = timeout
        self.wait = wait
        self.resolver = make_resolver(resolver, timeout)
        self._pending: dict[str, asyncio.Task[ReverseName]] = {}
        self._budgets: OrderedDict[str, Budget] = OrderedDict()

    def _budget_of(self, prefix: str) -> Budget:
        """The network's budget of new lookups: one /64 cannot claim a crawler from address after address and
        have gate look each up (and cache each answer)."""
        budget = self._budgets.pop(prefix, None) or Budget(LOOKUPS_PER_NETWORK)
        self._budgets[prefix] = budget
        if len(self._budgets) > MAX_NETWORKS:
            self._budgets.popitem(last=False)
        return budget

    async def lookup(self, ip: str, prefix: str) -> ReverseName | None:
        """The address's reverse DNS, from the cache or looked up now; None when it is not known within the wait
        (the lookup goes on in the background, and its answer is cached), or when the address's network (`prefix`)
        has spent its budget of new lookups."""
        try:
            cached = await self.store.get(cache_key(ip))
        except StoreError:
            cached = None
        answer = ReverseName.decode(cached) if cached is not None else None
        if answer is not None:
            return answer
        task = self._pending.get(ip)
        if task is None:
            if len(self._pending) >= MAX_PENDING or not self._budget_of(prefix).take():
                return None
            task = asyncio.get_running_loop().create_task(self._lookup_and_cache(ip))
            self._pending[ip] = task
            task.add_done_callback(lambda _: self._pending.pop(ip, None))
        done, _ = await asyncio.wait({task}, timeout=self.wait)  # waiting never cancels the lookup
        return task.result() if done else None

    async def _lookup_and_cache(self, ip: str) -> ReverseName:
        try:
            async with asyncio.timeout(self.timeout):
                answer = await self._resolve(ip)
        except TimeoutError:
            answer = ReverseName(failure=f"no answer within {self.timeout:g} s")
        ttl = FAILED_TTL if answer.failure else CONFIRMED_TTL if answer.names else UNCONFIRMED_TTL
        try:
            await self.store.set(cache_key(ip), answer.encode(), ttl)
        except StoreError as error:
            log.debug("reverse DNS of %s not cached: %s", ip, error)
        return answer

    async def _resolve(self, ip: str) -> ReverseName:
        if self.resolver is None:
            return ReverseName(failure="no resolver configured (no /etc/resolv.conf; set --resolver)")
        try:
            reply = await self.resolver.resolve(dns.reversename.from_address(ip), "PTR", search=False)
        except (dns.resolver.NXDOMAIN, dns.resolver.NoAnswer):
            return ReverseName()
        except dns.exception.DNSException as error:
            return ReverseName(failure=describe_failure(error))
        ptr = tuple(dict.fromkeys(record.target.to_text(omit_final_dot=True).lower() for record in reply))
        ptr = tuple(name for name in ptr if HOSTNAME.fullmatch(name))  # a label with "|" or "\\." is no host
        address = ipaddress.ip_address(ip)
        kind = "AAAA" if address.version == 6 else "A"
        confirmed = []
        for name in ptr[:MAX_NAMES]:
            try:
                forward = await self.resolver.resolve(dns.name.from_text(name), kind, search=False)
            except (dns.resolver.NXDOMAIN, dns.resolver.NoAnswer):
                continue
            except dns.exception.DNSException as error:
                return ReverseName(ptr=ptr, failure=describe_failure(error))
            if any(ipaddress.ip_address(record.address) == address for record in forward):
                confirmed.append(name)
        return ReverseName(tuple(confirmed), ptr)


def make_resolver(address: str | None, timeout: float) -> dns.asyncresolver.Resolver | None:
    try:
        resolver = dns.asyncresolver.Resolver(configure=address is None)
    except dns.resolver.NoResolverConfiguration:
        log.warning("no /etc/resolv.conf: reverse DNS cannot verify crawlers until --resolver is set")
        return None
    if address is not None:
        host, port = split_resolver(address)
        resolver.nameservers = [dns.nameserver.Do53Nameserver(host, port)]
    resolver.lifetime = timeout
    resolver.cache = None  # gate caches the whole verdict in the store, with its own lifetimes
    return resolver


def split_resolver(text: str) -> tuple[str, int]:
    """ "HOST", "HOST:PORT" or "[V6]:PORT" -> (address, port); ValueError when the host is not an IP address (a
    resolver named by a name would need a resolver to find)."""
    host, port = text.strip(), "53"
    if host.startswith("["):
        host, _, rest = host[1:].partition("]")
        port = rest.removeprefix(":") or "53"
    elif host.count(":") == 1:
        host, port = host.split(":")
    try:
        ipaddress.ip_address(host)
    except ValueError:
        raise ValueError(f"{text!r}: expected the resolver's IP address, optionally with :PORT") from None
    if not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(f"{text!r}: {port!r} is not a port")
    return host, int(port)


def describe_failure(error: dns.exception.DNSException) -> str:
    if isinstance(error, dns.resolver.LifetimeTimeout | dns.exception.Timeout):
        return "timed out"
    if isinstance(error, dns.resolver.NoNameservers):
        return "no name server answered (SERVFAIL or refused)"
    return type(error).__name__
