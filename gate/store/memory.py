"""The embedded store for a single gate instance: bounded in keys, expired by TTL, evicted least-recently-used."""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable, Mapping, Sequence

from gate.store.base import Quota, StoreError, Verdicts
from gate.store.gcra import advance, charge, milliseconds

Value = bytes | int | dict[str, int]  # a string, a counter or a hash of counters


# Puts between two sweeps of expired keys. A read drops an expired key it comes across, but a key nobody asks for
# again (the rate limit of an address seen once) would stay until evicted: a flood of new addresses filled the
# store up to max_keys with keys long expired, 28 MiB at the default. A sweep over 100,000 live keys takes about
# 13 ms; over what a flood leaves live (a few thousand), well under one.
SWEEP_EVERY = 4096


class MemoryStore:
    DEFAULT_MAX_KEYS = 100_000

    def __init__(self, max_keys: int = DEFAULT_MAX_KEYS, clock: Callable[[], float] = time.monotonic) -> None:
        """`clock` is what lifetimes and rate limits are measured on (`gate audit` replays a log on its own times)."""
        if max_keys < 1:
            raise ValueError("max_keys must be at least 1")
        self.max_keys = max_keys
        self.clock = clock
        self._entries: OrderedDict[str, tuple[Value, float]] = OrderedDict()
        self._puts_since_sweep = 0

    def __len__(self) -> int:
        return len(self._entries)

    def _live(self, key: str, now: float) -> tuple[Value, float] | None:
        entry = self._entries.get(key)
        if entry is None:
            return None
        if entry[1] <= now:
            del self._entries[key]
            return None
        self._entries.move_to_end(key)
        return entry

    def _put(self, key: str, value: Value, expires_at: float) -> None:
        self._entries[key] = (value, expires_at)
        self._entries.move_to_end(key)
        self._puts_since_sweep += 1
        if self._puts_since_sweep >= SWEEP_EVERY:
            self._sweep()
        while len(self._entries) > self.max_keys:
            self._entries.popitem(last=False)

    def _sweep(self) -> None:
        """Drop every expired key."""
        self._puts_since_sweep = 0
        now = self.clock()
        for key in [key for key, (_, expires_at) in self._entries.items() if expires_at <= now]:
            del self._entries[key]

    async def get(self, key: str) -> bytes | None:
        entry = self._live(key, self.clock())
        if entry is None:
            return None
        return _as_bytes(key, entry[0])

    async def set(self, key: str, value: bytes, ttl: float, *, only_if_absent: bool = False) -> bool:
        now = self.clock()
        if only_if_absent and self._live(key, now) is not None:
            return False
        self._put(key, value, now + ttl)
        return True

    async def incr(self, key: str, ttl: float, amount: int = 1) -> int:
        now = self.clock()
        entry = self._live(key, now)
        if entry is None:
            self._put(key, amount, now + ttl)
            return amount
        current, expires_at = entry
        try:
            value = int(_as_bytes(key, current)) + amount
        except ValueError as error:
            raise StoreError(f"{key!r} does not hold a counter") from error
        self._put(key, value, expires_at)
        return value

    async def incr_many(self, counts: Sequence[tuple[str, int, float]]) -> list[int]:
        return [await self.incr(key, ttl, amount) for key, amount, ttl in counts]

    async def delete(self, key: str) -> bool:
        entry = self._entries.pop(key, None)
        return entry is not None and entry[1] > self.clock()

    async def ttl(self, key: str) -> float | None:
        now = self.clock()
        entry = self._live(key, now)
        return None if entry is None else entry[1] - now

    async def rate_limit(self, quotas: Sequence[Quota], ban_key: str | None = None) -> Verdicts:
        moment = self.clock()
        if ban_key is not None and (ban := self._live(ban_key, moment)) is not None:
            return Verdicts([], ban[1] - moment)
        now = int(moment * 1000)
        verdicts, new_tats = charge(quotas, [self._tat(quota.key, moment) for quota in quotas], now)
        for quota, tat in zip(quotas, new_tats or [], strict=False):
            self._put(quota.key, tat, moment + (tat - now) / 1000)
        return Verdicts(verdicts)

    async def add_charges(
        self, charges: Sequence[tuple[Quota, int]], ban_keys: Sequence[str] = ()
    ) -> tuple[list[float], list[float]]:
        moment = self.clock()
        now = int(moment * 1000)
        resets = []
        for quota, count in charges:
            tat = advance(self._tat(quota.key, moment), now, milliseconds(quota.interval), count)
            self._put(quota.key, tat, moment + (tat - now) / 1000)
            resets.append((tat - now) / 1000)
        bans = [ban[1] - moment if (ban := self._live(key, moment)) is not None else 0.0 for key in ban_keys]
        return resets, bans

    def _tat(self, key: str, moment: float) -> int | None:
        """A quota's stored TAT; None when it has none (never charged, or full again)."""
        entry = self._live(key, moment)
        return entry[0] if entry is not None and isinstance(entry[0], int) else None

    async def scan(self, prefix: str, limit: int) -> list[tuple[str, bytes, float]]:
        now = self.clock()
        found: list[tuple[str, bytes, float]] = []
        for key, (value, expires_at) in list(self._entries.items()):
            if len(found) >= limit:
                break
            if key.startswith(prefix) and expires_at > now:
                found.append((key, _as_bytes(key, value), expires_at - now))
        return found

    async def add_counts(self, key: str, counts: Mapping[str, int], ttl: float) -> None:
        now = self.clock()
        entry = self._live(key, now)
        if entry is None or not isinstance(entry[0], dict):
            self._put(key, dict(counts), now + ttl)
            return
        for name, amount in counts.items():
            entry[0][name] = entry[0].get(name, 0) + amount

    async def get_counts(self, keys: Sequence[str]) -> list[dict[str, int]]:
        now = self.clock()
        found = []
        for key in keys:
            entry = self._live(key, now)
            found.append(dict(entry[0]) if entry is not None and isinstance(entry[0], dict) else {})
        return found

    async def ping(self) -> None:
        return None

    async def close(self) -> None:
        self._entries.clear()


def _as_bytes(key: str, value: Value) -> bytes:
    """A string or counter as Redis would return it; a hash is no string (Redis answers WRONGTYPE)."""
    if isinstance(value, dict):
        raise StoreError(f"{key!r} holds counters, not a value")
    return str(value).encode() if isinstance(value, int) else value
