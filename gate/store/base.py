"""The store protocol every implementation passes the same conformance suite for (tests/store/).

Every key has a time to live: nothing a client causes can grow the store forever.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol


class StoreError(Exception):
    """The store could not answer (unreachable, timed out, refused)."""


@dataclass(frozen=True, slots=True)
class Quota:
    """One rate limit to charge a request against: at most one request per `interval` seconds on average, with
    up to `burst` at once (GCRA: the key holds the theoretical arrival time of the next request)."""

    key: str
    interval: float
    burst: int


@dataclass(frozen=True, slots=True)
class Verdict:
    allowed: bool
    remaining: int  # requests still allowed at once after this one (0 when refused)
    retry_after: float  # seconds until this quota would allow the request (0 when allowed)
    reset_after: float  # seconds until the quota is full again


class Store(Protocol):
    async def get(self, key: str) -> bytes | None:
        """The value, or None when absent or expired."""

    async def set(self, key: str, value: bytes, ttl: float, *, only_if_absent: bool = False) -> bool:
        """Store value for ttl seconds. With only_if_absent, an existing key is left alone and False returned."""

    async def incr(self, key: str, ttl: float, amount: int = 1) -> int:
        """Add amount to a counter and return the new value; a new counter lives ttl seconds from now.

        Raises StoreError when the key holds something that is not a counter."""

    async def delete(self, key: str) -> bool:
        """Remove a key; True when it existed."""

    async def ttl(self, key: str) -> float | None:
        """Seconds left to live, or None when the key is absent."""

    async def rate_limit(self, quotas: Sequence[Quota]) -> list[Verdict]:
        """Charge one request against every quota, atomically and in one round trip: when any quota refuses,
        none is charged (a refused request costs the client nothing). Each key lives until its quota is full."""

    async def ping(self) -> None:
        """Raise StoreError when the store is not reachable."""

    async def close(self) -> None: ...
