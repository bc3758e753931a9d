"""Rate limits on top of the store: which quotas a request is charged against, what a refusal looks like, and how
repeated refusals escalate to a temporary ban of the client's address.

One request is charged against every limit that applies (the rule's own and the policy's guards), for every
subject each limit counts by, in one store call that also checks the address's ban. Keys of one client share a
Redis Cluster hash tag (its network), so that call stays atomic in a cluster too.
"""

from __future__ import annotations

import json
import logging
import math
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from gate import metrics
from gate.facts import Facts
from gate.fingerprint import Signals
from gate.local_quotas import LocalQuotas
from gate.logs import event
from gate.policy.model import Bans, Limit
from gate.store import Quota, Store, StoreError

log = logging.getLogger("gate.throttle")
STRIKE_WINDOW = 600.0  # seconds refusals are remembered when the policy bans nobody (they still raise difficulty)
UNAVAILABLE_RETRY = 5  # Retry-After when the store is down and gate fails closed
BAN_PREFIX = "ban:"
OWN_SUBJECTS = frozenset({"ip", "pass"})

Reason = Literal["limit", "ban", "unavailable"]
PAGES: dict[Reason, tuple[int, str, str]] = {
    "limit": (
        429,
        "Too many requests",
        "This client is asking for pages faster than this site allows. Please slow down.",
    ),
    "ban": (
        403,
        "Temporarily blocked",
        "This address went over this site's limits again and again, and is blocked for a while.",
    ),
    "unavailable": (
        503,
        "Service unavailable",
        "This site cannot check its limits right now. Please try again shortly.",
    ),
}


@dataclass(frozen=True, slots=True)
class Refusal:
    """Why a request was refused, and when to come back."""

    reason: Reason
    retry_after: float
    limit: Limit | None = None  # reason "limit": the limit that waits longest
    remaining: int = 0
    strikes: int = 0  # refusals of this address within the strike window, this one included

    @property
    def status(self) -> int:
        return PAGES[self.reason][0]

    @property
    def title(self) -> str:
        return PAGES[self.reason][1]

    @property
    def message(self) -> str:
        return PAGES[self.reason][2]

    def headers(self) -> list[tuple[bytes, bytes]]:
        """Retry-After, and for a limit the IETF RateLimit / RateLimit-Policy fields (Structured Fields)."""
        seconds = max(1, math.ceil(self.retry_after))
        fields = [(b"retry-after", str(seconds).encode())]
        if self.limit is not None:
            name = self.limit.name
            policy = f'"{name}";q={self.limit.rate};w={max(1, round(self.limit.period))}'
            fields += [
                (b"ratelimit-policy", policy.encode()),
                (b"ratelimit", f'"{name}";r={self.remaining};t={seconds}'.encode()),
            ]
        return fields


def client_tag(prefix: str) -> str:
    """The Redis Cluster hash tag of every key about one client: its network, so they share a slot."""
    return "{" + prefix + "}"


def quota_key(limit: Limit, per: str, facts: Facts, signals: Signals, pass_id: str | None) -> str:
    if per == "ip" or (per == "pass" and pass_id is None):  # a client without a pass is counted by its address
        return f"rl:{limit.name}:ip:{client_tag(facts.prefix)}{facts.ip}"
    if per == "pass":
        return f"rl:{limit.name}:pass:{client_tag(facts.prefix)}{pass_id}"
    if per == "network":
        return f"rl:{limit.name}:network:{client_tag(facts.prefix)}"
    if per == "agent":
        return f"rl:{limit.name}:agent:{{{signals.agent_name or 'class:' + signals.agent_class}}}"
    return f"rl:{limit.name}:{{site}}"  # site: every request together


def ban_key(ip: str, prefix: str) -> str:
    return f"{BAN_PREFIX}{client_tag(prefix)}{ip}"


def strike_key(ip: str, prefix: str) -> str:
    return f"strikes:{client_tag(prefix)}{ip}"


def banned_address(key: str) -> str:
    """The address a ban key (as `ban_key` writes it) is about."""
    return key.rpartition("}")[2]


class Throttle:
    def __init__(
        self, store: Store, fail_closed: bool = False, dry_run: bool = False, local: LocalQuotas | None = None
    ) -> None:
        self.store = store
        self.fail_closed = fail_closed
        self.dry_run = dry_run  # refusals are counted, but strike nobody and ban nobody
        self.local = local  # with a shared store: clients far from their limits are charged here, in batches

    async def charge(
        self,
        limits: Sequence[Limit],
        facts: Facts,
        signals: Signals,
        bans: Bans | None,
        pass_id: str | None = None,
    ) -> Refusal | None:
        """Charge one request; None when it may go on, else the refusal that waits longest."""
        if not limits and bans is None:
            return None
        charged = [
            (limit, per, Quota(quota_key(limit, per, facts, signals, pass_id), limit.interval, limit.burst))
            for limit in limits
            for per in limit.per
        ]
        try:
            answer = await (self.local or self.store).rate_limit(
                [quota for _, _, quota in charged], ban_key(facts.ip, facts.prefix) if bans else None
            )
        except StoreError as error:  # the store refused the call itself: like an outage, by --store-failure
            log.warning("rate limits not checked: %s", error)
            return Refusal("unavailable", UNAVAILABLE_RETRY) if self.fail_closed else None
        if self.fail_closed and answer.fallback:
            return Refusal("unavailable", UNAVAILABLE_RETRY)
        if answer.banned_for > 0:
            metrics.banned_requests_total.inc()
            return Refusal("ban", answer.banned_for)
        refusals = [
            (limit, per, verdict)
            for (limit, per, _), verdict in zip(charged, answer.each, strict=True)
            if not verdict.allowed
        ]
        if not refusals:
            return None
        limit, _, verdict = max(refusals, key=lambda refused: refused[2].retry_after)
        metrics.throttled_total.labels(limit.name, signals.agent_class).inc()
        # Only a refusal of the client's own quota is held against its address: a shared one (its network, its
        # agent, the site) may have been used up by others.
        own = any(per in OWN_SUBJECTS for _, per, _ in refusals)
        strikes = 0
        if own and not self.dry_run:
            try:
                strikes = await self.strike(facts, limit, bans)
            except StoreError as error:  # the refusal stands; only its escalation is lost
                log.warning("refusal of %s not counted: %s", facts.ip, error)
        return Refusal("limit", verdict.retry_after, limit, verdict.remaining, strikes)

    async def strike(self, facts: Facts, limit: Limit, bans: Bans | None) -> int:
        """Count a refusal against the address; the count reaching the policy's `bans.after` bans it."""
        window = bans.window if bans else STRIKE_WINDOW
        strikes = await self.store.incr(strike_key(facts.ip, facts.prefix), window)
        if bans is not None and strikes >= bans.after:
            record = json.dumps({"limit": limit.name, "strikes": strikes, "at": round(time.time())})
            if await self.store.set(
                ban_key(facts.ip, facts.prefix), record.encode(), bans.duration, only_if_absent=True
            ):
                metrics.bans_total.labels(limit.name).inc()
                log.warning(
                    "banned %s for %g s after %d refusals within %g s (last by limit %s)",
                    facts.ip,
                    bans.duration,
                    strikes,
                    window,
                    limit.name,
                    extra=event("ban", ip=facts.ip, seconds=bans.duration, strikes=strikes, limit=limit.name),
                )
        return strikes
