"""Site-wide load, shared by every instance through the store: requests per second and the upstream's 90th
percentile response time over the last few seconds, for rules that match `load: busy` (see docs/throttling.md).

Each instance counts locally (no store call per request) and, once a second, adds its counts to the store's hash
for the current second and reads the hashes of the seconds before: two store calls a second, whatever the traffic.
"""

from __future__ import annotations

import asyncio
import bisect
import itertools
import logging
import time
from collections.abc import Callable

from gate import metrics
from gate.policy.model import LoadThresholds
from gate.store import Store, StoreError, off_request_path

log = logging.getLogger("gate.load")

WINDOW_SECONDS = 10  # the load is measured over the last ten complete seconds
TICK_SECONDS = 1.0
MIN_LATENCY_SAMPLES = 20  # fewer upstream responses in the window say nothing about its p90
# Upper bounds of the upstream latency buckets, in seconds; counts go to the first bound at or above the value.
LATENCY_BOUNDS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, float("inf"))


def second_key(second: int) -> str:
    return f"load:{{site}}:{second}"  # one hash tag: a cluster keeps every second's hash on one node


def percentile(buckets: list[int], fraction: float) -> float | None:
    """The value below which `fraction` of the samples lie, interpolated within its bucket; None without samples."""
    total = sum(buckets)
    if total == 0:
        return None
    wanted = fraction * total
    cumulative = list(itertools.accumulate(buckets))
    index = bisect.bisect_left(cumulative, wanted)  # the first bucket that reaches it
    lower = LATENCY_BOUNDS[index - 1] if index else 0.0
    upper = LATENCY_BOUNDS[index]
    if upper == float("inf"):
        return lower
    below = cumulative[index] - buckets[index]
    return lower + (upper - lower) * (wanted - below) / buckets[index]


class SiteLoad:
    def __init__(self, store: Store, thresholds: Callable[[], LoadThresholds | None]) -> None:
        self.store = store
        self.thresholds = thresholds  # read at every tick: the rules may have been reloaded
        self.requests_per_second = 0.0
        self.upstream_p90: float | None = None
        self.busy = False
        self._busy_until = 0.0
        self._requests = 0
        self._latency = [0] * len(LATENCY_BOUNDS)

    def note(self, upstream_seconds: float | None) -> None:
        """Count one request (called for every request, so no I/O)."""
        self._requests += 1
        if upstream_seconds is not None:
            self._latency[bisect.bisect_left(LATENCY_BOUNDS, upstream_seconds)] += 1

    async def run(self) -> None:
        while True:
            await asyncio.sleep(TICK_SECONDS)
            try:
                with off_request_path():
                    await self.tick(time.time())
            except StoreError as error:  # try again at the next tick
                log.warning("could not update the site's load: %s", error)

    async def tick(self, now: float) -> None:
        """Publish this instance's counts since the last tick, then read the whole site's last window."""
        second = int(now)
        counts = {"requests": self._requests} | {f"b{i}": count for i, count in enumerate(self._latency) if count}
        self._requests = 0
        self._latency = [0] * len(LATENCY_BOUNDS)
        await self.store.add_counts(second_key(second), counts, ttl=2 * WINDOW_SECONDS)
        window = await self.store.get_counts(
            [second_key(earlier) for earlier in range(second - WINDOW_SECONDS, second)]
        )
        latency = [sum(hash_.get(f"b{i}", 0) for hash_ in window) for i in range(len(LATENCY_BOUNDS))]
        self.requests_per_second = sum(hash_.get("requests", 0) for hash_ in window) / WINDOW_SECONDS
        self.upstream_p90 = percentile(latency, 0.9) if sum(latency) >= MIN_LATENCY_SAMPLES else None
        self.update_busy(now)

    def update_busy(self, now: float) -> None:
        thresholds = self.thresholds()
        over = thresholds is not None and (
            (thresholds.requests_per_second is not None and self.requests_per_second > thresholds.requests_per_second)
            or (
                thresholds.upstream_p90 is not None
                and self.upstream_p90 is not None
                and self.upstream_p90 > thresholds.upstream_p90
            )
        )
        if over and thresholds is not None:
            self._busy_until = now + thresholds.hold
        busy = over or now < self._busy_until
        if busy != self.busy:
            log.warning(
                "site is %s: %.1f requests/s, upstream p90 %s",
                "busy" if busy else "calm again",
                self.requests_per_second,
                "unknown" if self.upstream_p90 is None else f"{self.upstream_p90 * 1000:.0f} ms",
            )
        self.busy = busy
        metrics.site_requests_per_second.set(self.requests_per_second)
        metrics.site_upstream_p90.set(self.upstream_p90 if self.upstream_p90 is not None else float("nan"))
        metrics.site_busy.set(1 if busy else 0)
