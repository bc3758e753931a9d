"""Web Bot Auth key directories, fetched from the URLs the rules name (a request's Signature-Agent picks one of
them, never a URL of its own). Every fetch is still guarded against being turned on the network gate runs in
(server-side request forgery), since a rules file may name a host that later moves:

- https only, port 443, no redirects followed, a size, time and key-count limit;
- the host's addresses are checked by the resolver the connection itself uses, so a name cannot resolve to a
  public address for the check and a private one for the connection; loopback, private, link-local and other
  non-global addresses, and IPv6 addresses that embed one (NAT64, 6to4, Teredo), are refused; `allow_private`
  lifts the address and port checks (for tests and closed networks only).

aiohttp makes the fetch, not httpx, because its connector takes a resolver: that is where the address check lives.
Directories are cached per instance, as HTTP caching says (Cache-Control max-age, within bounds); a stale entry
answers while it is refreshed, and a failed refresh keeps the keys it had.
"""

from __future__ import annotations

import asyncio
import base64
import errno
import hashlib
import ipaddress
import json
import logging
import math
import socket
import ssl
import time
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import aiohttp
from aiohttp.abc import AbstractResolver, ResolveResult
from aiohttp.resolver import ThreadedResolver

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

log = logging.getLogger("gate.verify")

MEDIA_TYPE = "application/http-message-signatures-directory+json"
MAX_BYTES = 64 * 1024
MAX_KEYS = 32
FETCH_SECONDS = 5.0
DEFAULT_TTL = 3600.0  # without Cache-Control
MIN_TTL = 60.0  # even no-store is kept this long: one fetch per request would let signers aim gate at a site
MAX_TTL = 86400.0
MAX_STALE = 86400.0  # keys kept past their lifetime while refreshes fail
FAILED_TTL = 300.0  # a directory that could not be had is asked again after this (the drafts: at most 5 min)
MAX_DIRECTORIES = 256
MAX_FETCHING = 16
NAT64 = (ipaddress.ip_network("64:ff9b::/96"), ipaddress.ip_network("64:ff9b:1::/48"))
SITE_LOCAL = ipaddress.ip_network("fec0::/10")


class DirectoryUnavailable(Exception):
    """The keys could not be had (yet): a signature by them is unverified, neither valid nor invalid."""


@dataclass(frozen=True, slots=True)
class Directory:
    keys: Mapping[str, Ed25519PublicKey]  # by JWK thumbprint
    fresh_until: float  # monotonic time
    stale_until: float
    problem: str | None = None  # why the last fetch failed (keys then hold what an earlier one got)


class KeyDirectories:
    def __init__(self, wait: float, allow_private: bool = False, tls: ssl.SSLContext | None = None) -> None:
        self.wait = wait
        self.allow_private = allow_private
        self.tls = tls  # None: the system's trust store, loaded at the first fetch (most rules name no signer)
        self._cache: OrderedDict[str, Directory] = OrderedDict()
        self._fetching: dict[str, asyncio.Task[Directory]] = {}
        self._session: aiohttp.ClientSession | None = None

    async def keys(self, url: str) -> Mapping[str, Ed25519PublicKey]:
        """The directory's keys; DirectoryUnavailable when they cannot be had within the wait."""
        now = time.monotonic()
        entry = self._cache.get(url)
        if entry is not None:
            self._cache.move_to_end(url)
            if entry.fresh_until > now:
                return _usable(entry)
            if entry.keys and entry.stale_until > now:
                self._start(url)  # answer from the stale keys while they are refreshed
                return entry.keys
        task = self._start(url)
        if task is None:
            raise DirectoryUnavailable("too many key directories are being fetched")
        done, _ = await asyncio.wait({task}, timeout=self.wait)  # waiting never cancels the fetch
        if not done:
            raise DirectoryUnavailable("the key directory is still being fetched")
        return _usable(task.result())

    def _start(self, url: str) -> asyncio.Task[Directory] | None:
        task = self._fetching.get(url)
        if task is None and len(self._fetching) < MAX_FETCHING:
            task = asyncio.get_running_loop().create_task(self._refresh(url))
            self._fetching[url] = task
            task.add_done_callback(lambda _: self._fetching.pop(url, None))
        return task

    async def _refresh(self, url: str) -> Directory:
        now = time.monotonic()
        try:
            keys, ttl = await self._fetch(url)
            entry = Directory(keys, now + ttl, now + ttl + MAX_STALE)
        except Exception as error:  # whatever went wrong, the request is answered and the failure cached
            if not isinstance(error, DirectoryUnavailable):
                log.exception("key directory %s: unexpected failure", url)
            log.info("key directory %s: %s", url, error)
            old = self._cache.get(url)
            kept = old.keys if old is not None and old.stale_until > now else {}
            stale_until = old.stale_until if old is not None and kept else now + FAILED_TTL
            entry = Directory(kept, now + FAILED_TTL, stale_until, str(error))
        self._cache[url] = entry
        self._cache.move_to_end(url)
        while len(self._cache) > MAX_DIRECTORIES:
            self._cache.popitem(last=False)
        return entry

    async def _fetch(self, url: str) -> tuple[dict[str, Ed25519PublicKey], float]:
        parts = urlsplit(url)
        host = parts.hostname or ""
        if parts.scheme != "https":
            raise DirectoryUnavailable("not an https URL")
        try:
            literal = ipaddress.ip_address(host)
        except ValueError:
            literal = None
        if literal is not None and not (self.allow_private or is_public(literal)):
            raise DirectoryUnavailable(f"{host} is not a public address")
        if not self.allow_private and parts.port not in (None, 443):
            raise DirectoryUnavailable("not on port 443")
        try:
            async with self._client().get(
                url, allow_redirects=False, headers={"Accept": f"{MEDIA_TYPE}, application/json"}
            ) as response:
                if response.status != 200:
                    raise DirectoryUnavailable(f"HTTP {response.status}")
                body = await read_at_most(response.content, MAX_BYTES + 1)
                cache_control = response.headers.get("cache-control", "")
        except (aiohttp.ClientError, OSError, TimeoutError, ValueError) as error:  # ValueError: IDNA, bad URLs
            raise DirectoryUnavailable(f"fetch failed: {error or type(error).__name__}") from None
        if len(body) > MAX_BYTES:
            raise DirectoryUnavailable(f"larger than {MAX_BYTES} bytes")
        return parse_keys(body, time.time()), cache_lifetime(cache_control)

    def _client(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            connector = aiohttp.TCPConnector(
                resolver=GuardedResolver(self.allow_private),
                ssl=self.tls if self.tls is not None else ssl.create_default_context(),
                limit=MAX_FETCHING,
                use_dns_cache=False,
            )
            self._session = aiohttp.ClientSession(
                connector=connector,
                timeout=aiohttp.ClientTimeout(total=FETCH_SECONDS),
                headers={"User-Agent": "gate (Web Bot Auth key directory fetch)"},
                trust_env=False,
            )
        return self._session

    async def close(self) -> None:
        for task in list(self._fetching.values()):
            task.cancel()
        if self._session is not None:
            await self._session.close()


async def read_at_most(stream: aiohttp.StreamReader, limit: int) -> bytes:
    """Up to `limit` bytes of a body, however many pieces it arrives in (one read returns what has arrived)."""
    body = bytearray()
    while len(body) < limit:
        chunk = await stream.read(limit - len(body))
        if not chunk:
            break
        body += chunk
    return bytes(body)


def _usable(entry: Directory) -> Mapping[str, Ed25519PublicKey]:
    if not entry.keys and entry.problem is not None:
        raise DirectoryUnavailable(entry.problem)
    return entry.keys


class GuardedResolver(AbstractResolver):
    """The system resolver, keeping only addresses gate may connect to for a key directory."""

    def __init__(self, allow_private: bool) -> None:
        self.allow_private = allow_private
        self.resolver = ThreadedResolver()

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        results = await self.resolver.resolve(host, port, family)
        allowed = [
            result for result in results if self.allow_private or is_public(ipaddress.ip_address(result["host"]))
        ]
        if not allowed:
            raise OSError(errno.EHOSTUNREACH, f"{host} resolves to no public address")
        return allowed

    async def close(self) -> None:
        await self.resolver.close()


def is_public(address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    """A global address that reaches no private one: IPv6 forms that carry an IPv4 address are judged by it."""
    if isinstance(address, ipaddress.IPv6Address):
        if address in SITE_LOCAL:
            return False
        embedded = address.ipv4_mapped or address.sixtofour or (address.teredo[1] if address.teredo else None)
        if embedded is None and any(address in network for network in NAT64):
            embedded = ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
        if embedded is None and int(address) >> 32 == 0:  # IPv4-compatible ::a.b.c.d
            embedded = ipaddress.IPv4Address(int(address))
        if embedded is not None:
            return embedded.is_global
    return address.is_global


def parse_keys(body: bytes, now: float) -> dict[str, Ed25519PublicKey]:
    """The Ed25519 keys of a JWK set, by thumbprint; keys of other kinds, or outside their nbf/exp, are skipped."""
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey  # see gate/verify/signatures.py

    try:
        data: Any = json.loads(body)
    except (ValueError, RecursionError):
        raise DirectoryUnavailable("not JSON") from None
    entries = data.get("keys") if isinstance(data, dict) else None
    if not isinstance(entries, list):
        raise DirectoryUnavailable("no `keys` list")
    if len(entries) > MAX_KEYS:
        raise DirectoryUnavailable(f"more than {MAX_KEYS} keys")
    keys = {}
    for jwk in entries:
        if not isinstance(jwk, dict) or jwk.get("kty") != "OKP" or jwk.get("crv") != "Ed25519":
            continue
        x = jwk.get("x")
        raw = b64url_decode(x) if isinstance(x, str) else None
        if not isinstance(x, str) or raw is None or len(raw) != 32 or not _in_validity(jwk, now):
            continue
        kid = thumbprint(x)
        if jwk.get("kid", kid) == kid:  # a `kid` other than the thumbprint would make keyid ambiguous
            keys[kid] = Ed25519PublicKey.from_public_bytes(raw)
    return keys


def _in_validity(jwk: Mapping[str, Any], now: float) -> bool:
    not_before, expires = jwk.get("nbf"), jwk.get("exp")
    if isinstance(not_before, int | float) and now < not_before:
        return False
    return not (isinstance(expires, int | float) and now > expires)


def thumbprint(x: str) -> str:
    """RFC 7638 thumbprint of an Ed25519 JWK (RFC 8037 section A.3): SHA-256 of its required members."""
    canonical = json.dumps({"crv": "Ed25519", "kty": "OKP", "x": x}, separators=(",", ":"), sort_keys=True)
    return base64.urlsafe_b64encode(hashlib.sha256(canonical.encode()).digest()).rstrip(b"=").decode()


def b64url_decode(text: str) -> bytes | None:
    try:
        return base64.b64decode(text + "=" * (-len(text) % 4), altchars=b"-_", validate=True)
    except ValueError:
        return None


def cache_lifetime(cache_control: str) -> float:
    """Seconds to keep a directory, from its Cache-Control, within [MIN_TTL, MAX_TTL]."""
    directives = {
        name.strip().lower(): value.strip().strip('"')
        for name, _, value in (part.partition("=") for part in cache_control.split(","))
    }
    if "no-store" in directives or "no-cache" in directives:
        return MIN_TTL
    try:
        seconds = float(directives["max-age"])
    except (KeyError, ValueError):
        return DEFAULT_TTL
    if math.isnan(seconds):  # float() reads "nan", which min() and max() pass through: no caching at all
        return DEFAULT_TTL
    return min(max(seconds, MIN_TTL), MAX_TTL)
