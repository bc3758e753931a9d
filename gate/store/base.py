"""The store protocol every implementation passes the same conformance suite for (tests/store/).

Every key has a time to live: nothing a client causes can grow the store forever.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol


class StoreError(Exception):
    """The store refused a call (e.g. a key holding the wrong kind of value)."""


class StoreUnavailable(StoreError):
    """The store could not be reached or did not answer in time: a fallback may answer instead."""


# Its own __init__ (init=False): mypyc compiles that one, not the one dataclass generates (docs/architecture.md).
@dataclass(slots=True, init=False)
class Quota:
    """One rate limit to charge a request against: at most one request per `interval` seconds on average, with
    up to `burst` at once (GCRA: the key holds the theoretical arrival time of the next request)."""

    key: str
    interval: float
    burst: int

    def __init__(self, key: str, interval: float, burst: int) -> None:
        self.key = key
        self.interval = interval
        self.burst = burst

    def same_rate(self, other: Quota) -> bool:
        return self.interval == other.interval and self.burst == other.burst


@dataclass(slots=True, init=False)
class Verdict:
    allowed: bool
    remaining: int  # requests still allowed at once after this one (0 when refused)
    retry_after: float  # seconds until this quota would allow the request (0 when allowed)
    reset_after: float  # seconds until the quota is full again

    def __init__(self, allowed: bool, remaining: int, retry_after: float, reset_after: float) -> None:
        self.allowed = allowed
        self.remaining = remaining
        self.retry_after = retry_after
        self.reset_after = reset_after


@dataclass(slots=True, init=False)
class Verdicts:
    """One charge's answer: a verdict per quota, or, when the client is banned, the seconds left on its ban (and
    then nothing is charged and `each` is empty)."""

    each: list[Verdict]
    banned_for: float = 0.0
    fallback: bool = False  # answered by an in-process fallback, not the shared store (counts are per instance)

    def __init__(self, each: list[Verdict], banned_for: float = 0.0, fallback: bool = False) -> None:
        self.each = each
        self.banned_for = banned_for
        self.fallback = fallback


class Store(Protocol):
    async def get(self, key: str) -> bytes | None:
        """The value, or None when absent or expired."""

    async def set(self, key: str, value: bytes, ttl: float, *, only_if_absent: bool = False) -> bool:
        """Store value for ttl seconds. With only_if_absent, an existing key is left alone and False returned."""

    async def incr(self, key: str, ttl: float, amount: int = 1) -> int:
        """Add amount to a counter and return the new value; a new counter lives ttl seconds from now.

        Raises StoreError when the key holds something that is not a counter."""

    async def incr_many(self, counts: Sequence[tuple[str, int, float]]) -> list[int]:
        """incr for several counters, (key, amount, ttl) each, in one round trip: their new values, in order.
        Atomic per cluster slot."""

    async def delete(self, key: str) -> bool:
        """Remove a key; True when it existed."""

    async def ttl(self, key: str) -> float | None:
        """Seconds left to live, or None when the key is absent."""

    async def rate_limit(self, quotas: Sequence[Quota], ban_key: str | None = None) -> Verdicts:
        """Charge one request against every quota, in one round trip: when any quota refuses, none is charged (a
        refused request costs the client nothing). With a ban_key that exists, nothing is charged and the ban's
        time left is returned. Each key lives until its quota is full.

        Atomic across keys that share a Redis Cluster hash slot (gate tags every key of one client alike); in a
        cluster, keys in other slots are charged in the same round trip, in parallel, but not atomically."""

    async def add_charges(
        self, charges: Sequence[tuple[Quota, int]], ban_keys: Sequence[str] = ()
    ) -> tuple[list[float], list[float]]:
        """Charge requests already let through (`count` each) without refusing any, in one round trip: each
        quota's seconds until it is full again afterwards, and each ban key's seconds left (0 when absent).
        Atomic per cluster slot, like rate_limit."""

    async def scan(self, prefix: str, limit: int) -> list[tuple[str, bytes, float]]:
        """Up to `limit` live keys starting with prefix, as (key, value, seconds left)."""

    async def add_counts(self, key: str, counts: Mapping[str, int], ttl: float) -> None:
        """Add to the named counters of a hash, which then lives ttl seconds from now."""

    async def get_counts(self, keys: Sequence[str]) -> list[dict[str, int]]:
        """The counters of each hash, in one round trip ({} for an absent key)."""

    async def ping(self) -> None:
        """Raise StoreError when the store is not reachable."""

    async def close(self) -> None: ...
