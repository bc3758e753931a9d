"""A shared store that never holds a request up: each call gets a deadline, and while the shared store fails,
calls are answered by an in-process MemoryStore until it answers again.

While on the fallback, counts and spent challenges are per instance (each gate counts its own share), which is
the best a gate that cannot reach its peers can do; `degraded` lets callers that must fail closed refuse instead.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable, Iterator, Mapping, Sequence
from contextvars import ContextVar
from dataclasses import replace
from typing import Any, TypeVar

from gate import metrics
from gate.logs import event
from gate.store.base import Quota, Store, StoreUnavailable, Verdicts
from gate.store.memory import MemoryStore

T = TypeVar("T")

log = logging.getLogger("gate.store")
FAILURES_TO_SWITCH = 3  # consecutive failed calls before every call goes to the fallback for a while
RETRY_SECONDS = 1.0  # then the shared store is tried again after this long
WARN_EVERY_SECONDS = 60.0
# Batches written off the request path (the charges and counts gathered in process every 100 ms, the site's load)
# may wait this long: they hold no request up. Under load gate's own event loop can run a reply later than
# --store-timeout; a batch answered by the fallback would then be counted there as well, and three such misses in
# a row would put every call on the fallback for a second.
BATCH_TIMEOUT = 1.0
_off_request_path: ContextVar[bool] = ContextVar("off_request_path", default=False)


@contextlib.contextmanager
def off_request_path() -> Iterator[None]:
    """Store calls made inside (in this task) wait for the shared store up to BATCH_TIMEOUT, not --store-timeout."""
    token = _off_request_path.set(True)
    try:
        yield
    finally:
        _off_request_path.reset(token)


class FallbackStore:
    def __init__(self, shared: Store, timeout: float, fallback: MemoryStore | None = None) -> None:
        self.shared = shared
        self.timeout = timeout
        self.fallback = fallback or MemoryStore()
        self._failures = 0
        self._down_since: float | None = None
        self._retry_at = 0.0
        self._warned_at = -WARN_EVERY_SECONDS
        self._prompt: frozenset[str] = getattr(shared, "prompt_operations", frozenset())

    @property
    def degraded(self) -> bool:
        """True while every call is answered by the in-process fallback."""
        return self._down_since is not None

    async def _call(
        self, operation: str, shared: Callable[[], Awaitable[T]], local: Callable[[], Awaitable[T]]
    ) -> tuple[T, bool]:
        """The shared store's answer, or the fallback's when it fails or misses the deadline; and which it was.

        When the shared store says the operation is prompt to cancel (`prompt_operations`: gate's own Redis
        client, whose every await is on a plain future), the deadline cancels the call where it waits: no task.
        Otherwise (redis-py's client: Cluster, Sentinel, scans and hashes) the call runs as a task that is
        abandoned at the deadline: cancelling an await directly is not reliably prompt on Python 3.11
        (asyncio.wait_for inside redis-py can swallow the cancellation)."""
        started = time.monotonic()
        if self._down_since is not None and started < self._retry_at:
            return await local(), True
        timeout = max(self.timeout, BATCH_TIMEOUT) if _off_request_path.get() else self.timeout
        try:
            if operation in self._prompt:
                async with asyncio.timeout(timeout):
                    result = await shared()
            else:
                result = await self._abandoned_at_deadline(shared(), timeout)
        except TimeoutError:
            self._failed(operation, f"no answer within {timeout:g} s", started)
            return await local(), True
        except StoreUnavailable as error:
            self._failed(operation, error, started)
            return await local(), True
        self._succeeded(started)
        metrics.store_durations(operation).observe(time.monotonic() - started)
        return result, False

    async def _abandoned_at_deadline(self, call: Awaitable[T], seconds: float) -> T:
        """The call's outcome, run as a task; TimeoutError when it misses the deadline (the task is cancelled and
        left to finish on its own)."""
        task = asyncio.ensure_future(call)
        try:
            done, _ = await asyncio.wait({task}, timeout=seconds)
        except asyncio.CancelledError:
            task.cancel()
            raise
        if not done:
            task.cancel()
            task.add_done_callback(_consume)
            raise TimeoutError
        return task.result()

    def _failed(self, operation: str, error: object, now: float) -> None:
        metrics.store_errors_total.labels(operation).inc()
        self._failures += 1
        if self._failures >= FAILURES_TO_SWITCH:
            self._retry_at = now + RETRY_SECONDS
            if self._down_since is None:
                self._down_since = now
                metrics.store_fallback.set(1)
                log.error(
                    "store unreachable (%s: %s): the in-process fallback answers every call",
                    operation,
                    error,
                    extra=event("store-down", operation=operation),
                )
        if now - self._warned_at >= WARN_EVERY_SECONDS:
            self._warned_at = now
            log.warning("store call failed (%s: %s): answered from the in-process fallback", operation, error)

    def _succeeded(self, started: float) -> None:
        self._failures = 0
        if self._down_since is not None and started >= self._down_since:  # not a call from before the outage
            down_for = round(started - self._down_since, 1)
            log.warning(
                "store reachable again after %.1f s; leaving the in-process fallback",
                down_for,
                extra=event("store-up", down_seconds=down_for),
            )
            self._down_since = None
            metrics.store_fallback.set(0)

    async def get(self, key: str) -> bytes | None:
        return (await self._call("get", lambda: self.shared.get(key), lambda: self.fallback.get(key)))[0]

    async def set(self, key: str, value: bytes, ttl: float, *, only_if_absent: bool = False) -> bool:
        done, _ = await self._call(
            "set",
            lambda: self.shared.set(key, value, ttl, only_if_absent=only_if_absent),
            lambda: self.fallback.set(key, value, ttl, only_if_absent=only_if_absent),
        )
        return done

    async def incr(self, key: str, ttl: float, amount: int = 1) -> int:
        value, _ = await self._call(
            "incr", lambda: self.shared.incr(key, ttl, amount), lambda: self.fallback.incr(key, ttl, amount)
        )
        return value

    async def incr_many(self, counts: Sequence[tuple[str, int, float]]) -> list[int]:
        values, _ = await self._call(
            "incr_many", lambda: self.shared.incr_many(counts), lambda: self.fallback.incr_many(counts)
        )
        return values

    async def delete(self, key: str) -> bool:
        return (await self._call("delete", lambda: self.shared.delete(key), lambda: self.fallback.delete(key)))[0]

    async def ttl(self, key: str) -> float | None:
        return (await self._call("ttl", lambda: self.shared.ttl(key), lambda: self.fallback.ttl(key)))[0]

    async def rate_limit(self, quotas: Sequence[Quota], ban_key: str | None = None) -> Verdicts:
        verdicts, local = await self._call(
            "rate_limit",
            lambda: self.shared.rate_limit(quotas, ban_key),
            lambda: self.fallback.rate_limit(quotas, ban_key),
        )
        return replace(verdicts, fallback=True) if local else verdicts

    async def add_charges(
        self, charges: Sequence[tuple[Quota, int]], ban_keys: Sequence[str] = ()
    ) -> tuple[list[float], list[float]]:
        answer, _ = await self._call(
            "add_charges",
            lambda: self.shared.add_charges(charges, ban_keys),
            lambda: self.fallback.add_charges(charges, ban_keys),
        )
        return answer

    async def scan(self, prefix: str, limit: int) -> list[tuple[str, bytes, float]]:
        found, _ = await self._call(
            "scan", lambda: self.shared.scan(prefix, limit), lambda: self.fallback.scan(prefix, limit)
        )
        return found

    async def add_counts(self, key: str, counts: Mapping[str, int], ttl: float) -> None:
        await self._call(
            "add_counts",
            lambda: self.shared.add_counts(key, counts, ttl),
            lambda: self.fallback.add_counts(key, counts, ttl),
        )

    async def get_counts(self, keys: Sequence[str]) -> list[dict[str, int]]:
        counts, _ = await self._call(
            "get_counts", lambda: self.shared.get_counts(keys), lambda: self.fallback.get_counts(keys)
        )
        return counts

    async def ping(self) -> None:
        """Readiness asks the shared store itself: a gate on its fallback is serving, but not sharing."""
        await self.shared.ping()

    async def close(self) -> None:
        await self.shared.close()
        await self.fallback.close()


def _consume(task: asyncio.Future[Any]) -> None:
    """Retrieve an abandoned call's outcome, so asyncio does not log it as never retrieved."""
    if not task.cancelled():
        task.exception()
