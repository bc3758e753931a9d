"""The embedded store for a single gate instance: bounded in keys, expired by TTL, evicted least-recently-used."""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Sequence

from gate.store.base import Quota, StoreError, Verdict
from gate.store.gcra import charge


class MemoryStore:
    DEFAULT_MAX_KEYS = 100_000

    def __init__(self, max_keys: int = DEFAULT_MAX_KEYS) -> None:
        if max_keys < 1:
            raise ValueError("max_keys must be at least 1")
        self.max_keys = max_keys
        self._entries: OrderedDict[str, tuple[bytes | int, float]] = OrderedDict()

    def __len__(self) -> int:
        return len(self._entries)

    def _live(self, key: str, now: float) -> tuple[bytes | int, float] | None:
        entry = self._entries.get(key)
        if entry is None:
            return None
        if entry[1] <= now:
            del self._entries[key]
            return None
        self._entries.move_to_end(key)
        return entry

    def _put(self, key: str, value: bytes | int, expires_at: float) -> None:
        self._entries[key] = (value, expires_at)
        self._entries.move_to_end(key)
        while len(self._entries) > self.max_keys:
            self._entries.popitem(last=False)

    async def get(self, key: str) -> bytes | None:
        entry = self._live(key, time.monotonic())
        if entry is None:
            return None
        value = entry[0]
        return str(value).encode() if isinstance(value, int) else value

    async def set(self, key: str, value: bytes, ttl: float, *, only_if_absent: bool = False) -> bool:
        now = time.monotonic()
        if only_if_absent and self._live(key, now) is not None:
            return False
        self._put(key, value, now + ttl)
        return True

    async def incr(self, key: str, ttl: float, amount: int = 1) -> int:
        now = time.monotonic()
        entry = self._live(key, now)
        if entry is None:
            self._put(key, amount, now + ttl)
            return amount
        current, expires_at = entry
        try:
            value = (int(current) if isinstance(current, bytes) else current) + amount
        except ValueError as error:
            raise StoreError(f"{key!r} does not hold a counter") from error
        self._put(key, value, expires_at)
        return value

    async def delete(self, key: str) -> bool:
        entry = self._entries.pop(key, None)
        return entry is not None and entry[1] > time.monotonic()

    async def ttl(self, key: str) -> float | None:
        now = time.monotonic()
        entry = self._live(key, now)
        return None if entry is None else entry[1] - now

    async def rate_limit(self, quotas: Sequence[Quota]) -> list[Verdict]:
        moment = time.monotonic()
        now = int(moment * 1000)
        stored = []
        for quota in quotas:
            entry = self._live(quota.key, moment)
            stored.append(entry[0] if entry is not None and isinstance(entry[0], int) else None)
        verdicts, new_tats = charge(quotas, stored, now)
        for quota, tat in zip(quotas, new_tats or [], strict=False):
            self._put(quota.key, tat, moment + (tat - now) / 1000)
        return verdicts

    async def ping(self) -> None:
        return None

    async def close(self) -> None:
        self._entries.clear()
