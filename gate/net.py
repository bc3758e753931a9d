"""Client addresses: trusted proxies, the client IP behind them, and the /24 or /64 a client lives in."""

from __future__ import annotations

import ipaddress
import re
import socket
from bisect import bisect_right
from collections.abc import Iterable
from dataclasses import dataclass
from functools import lru_cache

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
AddressRange = tuple[int, int, int]  # (IP version, first address, last address), for NetworkIndex

_OCTET = r"(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)"  # no leading zeros, as ipaddress insists
_DOTTED_QUAD = re.compile(rf"{_OCTET}(?:\.{_OCTET}){{3}}")

IPV4_PREFIX_LEN = 24
IPV6_PREFIX_LEN = 64


def parse_ip(text: str) -> IPAddress | None:
    """An address from a header or socket, IPv4-mapped IPv6 folded to IPv4; None when it is not an address."""
    text = text.strip()
    if text.startswith("[") and "]" in text:  # "[2001:db8::1]:443" as some proxies write it
        text = text[1 : text.index("]")]
    elif text.count(":") == 1:  # "192.0.2.1:443"
        text = text.split(":", 1)[0]
    if _DOTTED_QUAD.fullmatch(text):  # the common case, several times faster than ip_address's parser
        return ipaddress.IPv4Address(socket.inet_aton(text))
    try:
        address = ipaddress.ip_address(text)
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


# What a request needs of its addresses is cached by their text: str() of an address object costs more than the
# parse. The caches are bounded (addresses come from clients; a few thousand recent ones cover the steady state),
# and hold strings only: with a cache of address objects too, a flood of new addresses cost 3 MB more per worker.
# A flood of new addresses fills them all: about 520 bytes per address for the three, 4 MB per worker at this size.
ADDRESS_CACHE_SIZE = 8192


@lru_cache(maxsize=ADDRESS_CACHE_SIZE)
def canonical_ip(text: str) -> str | None:
    """parse_ip's address as text."""
    address = parse_ip(text)
    return str(address) if address is not None else None


@lru_cache(maxsize=ADDRESS_CACHE_SIZE)
def prefix_of(text: str) -> str | None:
    """client_prefix of an address given as text; None when it is not an address."""
    address = parse_ip(text)
    return client_prefix(address) if address is not None else None


def parse_network(text: str) -> IPNetwork:
    """A CIDR (or a bare address, meaning one host). Raises ValueError with a readable message."""
    try:
        return ipaddress.ip_network(text.strip(), strict=False)
    except ValueError as error:
        raise ValueError(f"{text.strip()!r} is not an IP network (expected CIDR like 10.0.0.0/8)") from error


def address_range(network: IPNetwork) -> AddressRange:
    """What NetworkIndex keeps of a network: lists of cloud ranges hold tens of thousands, and an ip_network
    object each, held until the index is built, left most of 10 MB of fragmented memory in every worker."""
    return network.version, int(network.network_address), int(network.broadcast_address)


def hostname(host: str) -> str:
    """A Host header without its port, lower-cased ("[2001:db8::1]:8080" -> "[2001:db8::1]")."""
    if host.startswith("["):
        return host[: host.find("]") + 1].lower()
    return host.rsplit(":", 1)[0].lower()


def client_prefix(address: IPAddress) -> str:
    """The network a client is bound to: its /24 for IPv4, its /64 for IPv6 (integer masking: this runs for
    every new client address, and building an ip_network costs several times more)."""
    if isinstance(address, ipaddress.IPv4Address):
        return f"{ipaddress.IPv4Address(int(address) >> 8 << 8)}/{IPV4_PREFIX_LEN}"
    return f"{ipaddress.IPv6Address(int(address) >> 64 << 64)}/{IPV6_PREFIX_LEN}"


@dataclass(frozen=True, slots=True)
class ForwardedFor:
    """Who the client is, as far as the trusted proxies in front of gate tell it."""

    client: str
    peer: str
    peer_trusted: bool


class TrustedProxies:
    """The proxies whose X-Forwarded-For / X-Real-IP gate believes."""

    def __init__(self, networks: Iterable[IPNetwork]) -> None:
        self.networks = tuple(networks)
        # Peers are few (the proxies in front of gate, or the clients themselves): cache the membership test.
        self.is_trusted = lru_cache(maxsize=4096)(self._is_trusted)

    def _is_trusted(self, peer: str) -> bool:
        address = parse_ip(peer)
        return address is not None and any(address in network for network in self.networks)

    def resolve(self, peer: str, forwarded_for: str | None, real_ip: str | None) -> ForwardedFor:
        """The client IP: the peer itself unless the peer is a trusted proxy.

        Behind trusted proxies, X-Forwarded-For is read right to left, skipping trusted hops; the first
        untrusted address is the client (anything left of it was written by the client and can be forged).
        An unparsable entry stops the walk: the last address a trusted hop vouched for is used.
        """
        peer = canonical_ip(peer) or peer  # a dual-stack listener's ::ffff:a.b.c.d is a.b.c.d
        if not self.networks or not self.is_trusted(peer):
            return ForwardedFor(client=peer, peer=peer, peer_trusted=False)
        client = peer
        if forwarded_for:
            for hop in reversed(forwarded_for.split(",")):
                address = canonical_ip(hop)
                if address is None:
                    break
                client = address
                if not self.is_trusted(client):
                    break
        elif real_ip:
            client = canonical_ip(real_ip) or client
        return ForwardedFor(client=client, peer=peer, peer_trusted=True)


class NetworkIndex:
    """Which named network lists an address belongs to, in one binary search whatever the number of prefixes.

    The address space is cut into segments at every prefix boundary; each segment knows the set of list names
    covering it. The few distinct sets are shared between segments: one each per segment took 6 MB per worker with
    the shipped cloud ranges.
    """

    def __init__(self, lists: dict[str, list[AddressRange]]) -> None:
        self.names = frozenset(lists)
        self._v4 = self._build(lists, 4)
        self._v6 = self._build(lists, 6)
        self.lookup = lru_cache(maxsize=ADDRESS_CACHE_SIZE)(self._lookup)

    @staticmethod
    def _build(lists: dict[str, list[AddressRange]], version: int) -> tuple[list[int], list[frozenset[str]]]:
        events: list[tuple[int, int, str]] = []  # (position, +1 start / -1 end, name)
        for name, ranges in lists.items():
            for range_version, first, last in ranges:
                if range_version == version:
                    events.append((first, 1, name))
                    events.append((last + 1, -1, name))
        events.sort(key=lambda event: (event[0], event[1]))
        starts: list[int] = [0]
        covering: list[frozenset[str]] = [frozenset()]
        active: dict[str, int] = {}
        shared: dict[frozenset[str], frozenset[str]] = {}
        for position, change, name in events:
            active[name] = active.get(name, 0) + change
            names = frozenset(key for key, count in active.items() if count > 0)
            names = shared.setdefault(names, names)
            if starts[-1] == position:
                covering[-1] = names
            elif names != covering[-1]:
                starts.append(position)
                covering.append(names)
        return starts, covering

    def _lookup(self, address: str) -> frozenset[str]:
        parsed = parse_ip(address)
        if parsed is None:
            return frozenset()
        starts, covering = self._v4 if parsed.version == 4 else self._v6
        return covering[bisect_right(starts, int(parsed)) - 1]
