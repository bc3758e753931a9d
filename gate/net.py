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
_IPV4_CIDR = re.compile(rf"({_DOTTED_QUAD.pattern})(?:/(3[0-2]|[12]?[0-9]))?")  # other forms: ipaddress decides

IPV4_PREFIX_LEN = 24
IPV6_PREFIX_LEN = 64
NO_NAMES: frozenset[str] = frozenset()


def parse_ip(text: str) -> IPAddress | None:
    """An address from a header or socket, IPv4-mapped IPv6 folded to IPv4; None when it is not an address."""
    text = bare_address(text)
    if _DOTTED_QUAD.fullmatch(text):  # the common case, several times faster than ip_address's parser
        return ipaddress.IPv4Address(socket.inet_aton(text))
    try:
        address = ipaddress.ip_address(text)
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


def bare_address(text: str) -> str:
    """An address as headers and sockets write it, without brackets or port: "[2001:db8::1]:443" -> "2001:db8::1"."""
    text = text.strip()
    if text.startswith("[") and "]" in text:
        return text[1 : text.index("]")]
    if text.count(":") == 1:  # "192.0.2.1:443"
        return text.split(":", 1)[0]
    return text


# Its own __init__ (init=False): mypyc compiles that one, not the one dataclass generates (docs/architecture.md).
@dataclass(slots=True, init=False)
class ClientAddress:
    """An address as a request needs it: its canonical text, its number and the network it is bound to."""

    text: str
    version: int
    value: int
    prefix: str  # its /24 (IPv4) or /64 (IPv6), as client_prefix writes it

    def __init__(self, text: str, version: int, value: int, prefix: str) -> None:
        self.text = text
        self.version = version
        self.value = value
        self.prefix = prefix


# A request needs its client's address several times (the trusted-proxy walk, its prefix, the network lists of the
# fingerprint and of the rules): it is parsed once and kept by its text. The cache is bounded (addresses come from
# clients; a few thousand recent ones cover the steady state). A flood of new addresses fills it: about 300 bytes
# per address (tracemalloc), 2.4 MB per worker at this size; the four caches of strings it replaces took 520 bytes.
ADDRESS_CACHE_SIZE = 8192


@lru_cache(maxsize=ADDRESS_CACHE_SIZE)
def address_of(text: str) -> ClientAddress | None:
    """parse_ip's address, with its text and prefix; None when it is not an address. A dotted quad (nearly every
    client) is read without an address object: str() of one costs more than the parse, and its text is already
    canonical (the pattern admits no leading zeros)."""
    bare = bare_address(text)
    if _DOTTED_QUAD.fullmatch(bare):
        value = int.from_bytes(socket.inet_aton(bare), "big")
        return ClientAddress(bare, 4, value, f"{bare[: bare.rindex('.')]}.0/{IPV4_PREFIX_LEN}")
    address = parse_ip(bare)
    if address is None:
        return None
    return ClientAddress(str(address), address.version, int(address), client_prefix(address))


def canonical_ip(text: str) -> str | None:
    """parse_ip's address as text."""
    address = address_of(text)
    return address.text if address is not None else None


def prefix_of(text: str) -> str | None:
    """client_prefix of an address given as text; None when it is not an address."""
    address = address_of(text)
    return address.prefix if address is not None else None


def parse_network(text: str) -> IPNetwork:
    """A CIDR (or a bare address, meaning one host). Raises ValueError with a readable message."""
    try:
        return ipaddress.ip_network(text.strip(), strict=False)
    except ValueError as error:
        raise ValueError(f"{text.strip()!r} is not an IP network (expected CIDR like 10.0.0.0/8)") from error


def network_range(text: str) -> AddressRange:
    """address_range(parse_network(text)); an IPv4 CIDR without a network object: network lists hold tens of
    thousands, and building each one was most of loading them (at every start and reload)."""
    text = text.strip()
    match = _IPV4_CIDR.fullmatch(text)
    if match is None:
        return address_range(parse_network(text))
    host_bits = 32 - int(match[2] or 32)
    first = int.from_bytes(socket.inet_aton(match[1]), "big") >> host_bits << host_bits
    return 4, first, first | ((1 << host_bits) - 1)


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


@dataclass(slots=True, init=False)
class ForwardedFor:
    """Who the client is, as far as the trusted proxies in front of gate tell it."""

    client: str
    peer: str
    peer_trusted: bool

    def __init__(self, client: str, peer: str, peer_trusted: bool) -> None:
        self.client = client
        self.peer = peer
        self.peer_trusted = peer_trusted


class TrustedProxies:
    """The proxies whose X-Forwarded-For / X-Real-IP gate believes."""

    def __init__(self, networks: Iterable[IPNetwork]) -> None:
        self.networks = tuple(networks)
        self.ranges = tuple(address_range(network) for network in self.networks)

    def trusts(self, address: ClientAddress) -> bool:
        return any(
            version == address.version and first <= address.value <= last for version, first, last in self.ranges
        )

    def resolve(self, peer: str, forwarded_for: str | None, real_ip: str | None) -> ForwardedFor:
        """The client IP: the peer itself unless the peer is a trusted proxy.

        Behind trusted proxies, X-Forwarded-For is read right to left, skipping trusted hops; the first
        untrusted address is the client (anything left of it was written by the client and can be forged).
        An unparsable entry stops the walk: the last address a trusted hop vouched for is used.
        """
        peer_address = address_of(peer)
        if peer_address is not None:
            peer = peer_address.text  # a dual-stack listener's ::ffff:a.b.c.d is a.b.c.d
        if peer_address is None or not self.trusts(peer_address):
            return ForwardedFor(client=peer, peer=peer, peer_trusted=False)
        client = peer
        if forwarded_for:
            for hop in reversed(forwarded_for.split(",")):
                # Stripped, a dotted quad is its canonical text: the prefix and network lookups after find it cached.
                address = address_of(hop.strip())
                if address is None:
                    break
                client = address.text
                if not self.trusts(address):
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

    def lookup(self, text: str) -> frozenset[str]:
        address = address_of(text)
        if address is None:
            return NO_NAMES
        starts, covering = self._v4 if address.version == 4 else self._v6
        return covering[bisect_right(starts, address.value) - 1]
