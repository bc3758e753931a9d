"""A shared store that never holds a request up: each call gets a deadline, and while the shared store fails,
calls are answered by an in-process MemoryStore until it answers again.

While on the fallback, counts and spent challenges are per instance (each gate counts its own share), which is
the best a gate that cannot reach its peers can do; `degraded` lets callers that must fail closed refuse instead.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import TypeVar

from gate import metrics
from gate.store.base import Quota, Store, StoreUnavailable, Verdicts
from gate.store.memory import MemoryStore

T = TypeVar("T")

log = logging.getLogger("gate.store")
RETRY_SECONDS = 1.0  # after a failure, calls go to the fallback this long before the shared store is tried again
WARN_EVERY_SECONDS = 60.0


class FallbackStore:
    def __init__(self, shared: Store, timeout: float, fallback: MemoryStore | None = None) -> None:
        self.shared = shared
        self.timeout = timeout
        self.fallback = fallback or MemoryStore()
        self._down_since: float | None = None
        self._retry_at = 0.0
        self._warned_at = -WARN_EVERY_SECONDS

    @property
    def degraded(self) -> bool:
        """True while calls are answered by the in-process fallback."""
        return self._down_since is not None

    async def _call(self, operation: str, shared: Callable[[], Awaitable[T]], local: Callable[[], Awaitable[T]]) -> T:
        now = time.monotonic()
        if self._down_since is not None and now < self._retry_at:
            return await local()
        try:
            async with asyncio.timeout(self.timeout):
                result = await shared()
        except (StoreUnavailable, TimeoutError) as error:
            self._failed(operation, str(error) or f"no answer within {self.timeout:g} s", now)
            return await local()
        if self._down_since is not None:
            log.warning("store reachable again after %.1f s; leaving the in-process fallback", now - self._down_since)
            self._down_since = None
            metrics.store_fallback.set(0)
        return result

    def _failed(self, operation: str, error: object, now: float) -> None:
        metrics.store_errors_total.labels(operation).inc()
        self._retry_at = now + RETRY_SECONDS
        if self._down_since is None:
            self._down_since = now
            metrics.store_fallback.set(1)
        if now - self._warned_at >= WARN_EVERY_SECONDS:
            self._warned_at = now
            log.warning(
                "store unavailable (%s: %s): answering from the in-process fallback, retrying every %g s",
                operation,
                error,
                RETRY_SECONDS,
            )

    async def get(self, key: str) -> bytes | None:
        return await self._call("get", lambda: self.shared.get(key), lambda: self.fallback.get(key))

    async def set(self, key: str, value: bytes, ttl: float, *, only_if_absent: bool = False) -> bool:
        return await self._call(
            "set",
            lambda: self.shared.set(key, value, ttl, only_if_absent=only_if_absent),
            lambda: self.fallback.set(key, value, ttl, only_if_absent=only_if_absent),
        )

    async def incr(self, key: str, ttl: float, amount: int = 1) -> int:
        return await self._call(
            "incr", lambda: self.shared.incr(key, ttl, amount), lambda: self.fallback.incr(key, ttl, amount)
        )

    async def delete(self, key: str) -> bool:
        return await self._call("delete", lambda: self.shared.delete(key), lambda: self.fallback.delete(key))

    async def ttl(self, key: str) -> float | None:
        return await self._call("ttl", lambda: self.shared.ttl(key), lambda: self.fallback.ttl(key))

    async def rate_limit(self, quotas: Sequence[Quota], ban_key: str | None = None) -> Verdicts:
        return await self._call(
            "rate_limit",
            lambda: self.shared.rate_limit(quotas, ban_key),
            lambda: self.fallback.rate_limit(quotas, ban_key),
        )

    async def scan(self, prefix: str, limit: int) -> list[tuple[str, bytes, float]]:
        return await self._call(
            "scan", lambda: self.shared.scan(prefix, limit), lambda: self.fallback.scan(prefix, limit)
        )

    async def add_counts(self, key: str, counts: Mapping[str, int], ttl: float) -> None:
        await self._call(
            "add_counts",
            lambda: self.shared.add_counts(key, counts, ttl),
            lambda: self.fallback.add_counts(key, counts, ttl),
        )

    async def get_counts(self, keys: Sequence[str]) -> list[dict[str, int]]:
        return await self._call(
            "get_counts", lambda: self.shared.get_counts(keys), lambda: self.fallback.get_counts(keys)
        )

    async def ping(self) -> None:
        """Readiness asks the shared store itself: a gate on its fallback is serving, but not sharing."""
        await self.shared.ping()

    async def close(self) -> None:
        await self.shared.close()
        await self.fallback.close()
