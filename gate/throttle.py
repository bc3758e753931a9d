"""Rate limits on top of the store: which quotas a request is charged against, and what a refusal looks like.

One request is charged against every limit that applies (the rule's own and the policy's guards), for every
subject each limit counts by, in one atomic store call. When the store cannot answer, the request goes through
(fail-open) and a metric says so.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Sequence
from dataclasses import dataclass

from gate import metrics
from gate.facts import Facts
from gate.fingerprint import Signals
from gate.policy.model import Limit
from gate.store import Quota, Store, StoreError

log = logging.getLogger("gate.throttle")
WARN_EVERY_SECONDS = 60.0


@dataclass(frozen=True, slots=True)
class Refusal:
    """The limit that refused a request, and when to come back."""

    limit: Limit
    retry_after: float
    remaining: int

    def headers(self) -> list[tuple[bytes, bytes]]:
        """Retry-After and the IETF RateLimit / RateLimit-Policy fields (Structured Fields)."""
        seconds = max(1, math.ceil(self.retry_after))
        name = self.limit.name
        policy = f'"{name}";q={self.limit.rate};w={max(1, round(self.limit.period))}'
        return [
            (b"retry-after", str(seconds).encode()),
            (b"ratelimit-policy", policy.encode()),
            (b"ratelimit", f'"{name}";r={self.remaining};t={seconds}'.encode()),
        ]


def subject(per: str, facts: Facts, signals: Signals) -> str:
    if per == "ip":
        return facts.ip
    if per == "network":
        return facts.prefix
    if per == "agent":
        return signals.agent_name or f"class:{signals.agent_class}"
    return "-"  # site: every request together


class Throttle:
    def __init__(self, store: Store) -> None:
        self.store = store
        self._warned = 0.0

    async def charge(self, limits: Sequence[Limit], facts: Facts, signals: Signals) -> Refusal | None:
        """Charge one request; the refusal of the limit that waits longest, or None when every limit allows it."""
        if not limits:
            return None
        charged = [
            (limit, Quota(f"rl:{limit.name}:{per}:{subject(per, facts, signals)}", limit.interval, limit.burst))
            for limit in limits
            for per in limit.per
        ]
        try:
            verdicts = await self.store.rate_limit([quota for _, quota in charged])
        except StoreError as error:
            metrics.store_errors_total.labels("rate_limit").inc()
            now = time.monotonic()
            if now - self._warned > WARN_EVERY_SECONDS:
                self._warned = now
                log.warning("store unavailable, letting requests through unthrottled: %s", error)
            return None
        refusals = [
            Refusal(limit, verdict.retry_after, verdict.remaining)
            for (limit, _), verdict in zip(charged, verdicts, strict=True)
            if not verdict.allowed
        ]
        if not refusals:
            return None
        refusal = max(refusals, key=lambda refused: refused.retry_after)
        metrics.throttled_total.labels(refusal.limit.name, signals.agent_class).inc()
        return refusal
