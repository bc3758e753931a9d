"""Rate limits charged in-process while a client is far from them, added to the shared store in batches.

Asking Redis about every request costs a round trip and a script run per request, on gate's CPU and on Redis's,
for an answer that is almost always "allowed, with most of the burst left". So this instance keeps each quota's
GCRA state (the theoretical arrival time, on this instance's clock) and decides requests itself while every quota
keeps at least half its burst after the charge. A quota it has not seen (or has forgotten) starts full, and a
client it knows no ban of is taken as not banned. What it let through is added to the shared quotas every
FLUSH_SECONDS in one call, which also brings back what the other instances charged and whether the client has
been banned.

Anything close to a limit goes to the store, as before: a quota with less than half its burst left or a small
burst, every request after a refusal, every request of a banned client. The cost of the shortcut is exactness
within one flush interval: a client spread over N instances can get up to N times half a burst through before
each instance learns what the others counted, and a client that another instance banned gets as much before the
flush brings its ban (a ban this instance has learned it keeps until the ban ends). Counting stays complete: every
request reaches the store.
"""

from __future__ import annotations

import logging
import time
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass

from gate.later import FlushLater
from gate.store import Quota, Store, StoreError, Verdicts, off_request_path
from gate.store.gcra import charge, milliseconds

log = logging.getLogger("gate.throttle")

FLUSH_SECONDS = 0.1
IDLE_SECONDS = 10.0  # a quota unused this long here is forgotten: its next request starts afresh
# Quotas (and clients' ban states) kept here at once, about 600 bytes per client with a per-address guard (its
# keys, GCRA state and ban state): at most 5 MB per worker. The least recently used beyond are forgotten, and their
# next request starts afresh; under a flood of new addresses the map is full within seconds either way.
MAX_TRACKED = 8192
MIN_BURST = 10  # smaller bursts are always decided by the store: one request is a large share of them


# Its own __init__ (init=False): mypyc compiles that one, not the one dataclass generates (docs/architecture.md).
@dataclass(slots=True, init=False)
class Tracked:
    quota: Quota
    tat: int  # theoretical arrival time in ms on time.time()'s clock, as learned plus what was charged here since
    pending: int = 0  # charged here, not yet added to the store
    trusted: bool = True  # False after the store refused: the next request asks it again

    def __init__(self, quota: Quota, tat: int, pending: int = 0, trusted: bool = True) -> None:
        self.quota = quota
        self.tat = tat
        self.pending = pending
        self.trusted = trusted


class LocalQuotas:
    def __init__(self, store: Store) -> None:
        self.store = store
        self.tracked: OrderedDict[str, Tracked] = OrderedDict()  # least recently used first
        self.unsent: dict[str, Tracked] = {}  # quotas with charges the store has not seen yet
        # What the store said of clients' bans, least recently learned first: ban key -> monotonic time it said the
        # client was not banned, or the time its ban ends. A key in neither is unknown, and taken as not banned
        # until the next flush asks.
        self.unbanned: OrderedDict[str, float] = OrderedDict()
        self.banned: OrderedDict[str, float] = OrderedDict()
        self.bans_to_check: set[str] = set()
        self.flusher = FlushLater(FLUSH_SECONDS, self.flush)

    async def rate_limit(self, quotas: Sequence[Quota], ban_key: str | None = None) -> Verdicts:
        """Store.rate_limit, decided here when the client is far from every limit."""
        answer = self.charge_here(quotas, ban_key)
        if answer is not None:
            return answer
        unsent = [state for quota in quotas if (state := self.unsent.pop(quota.key, None)) is not None]
        if unsent:  # the store decides this one: it must see what was let through here first
            await self._add(unsent, [])
        answer = await self.store.rate_limit(quotas, ban_key)
        self.learn(quotas, ban_key, answer)
        return answer

    def charge_here(self, quotas: Sequence[Quota], ban_key: str | None) -> Verdicts | None:
        """The verdicts for one request when this instance may decide it; None when the store must."""
        if ban_key is not None and ban_key in self.banned:
            return None  # banned: the store says for how long, and whether the ban was lifted
        now = int(time.time() * 1000)
        states = []
        fresh: dict[str, Tracked] = {}  # quotas not seen here (or forgotten): they start full
        for quota in quotas:
            state = self.tracked.get(quota.key) or fresh.get(quota.key)
            if state is None:
                state = fresh[quota.key] = Tracked(quota, now)
            if quota.burst < MIN_BURST or not state.trusted or not state.quota.same_rate(quota):
                return None  # a small burst, refused last time, or its limit changed (a reload)
            states.append(state)
        verdicts, new_tats = charge(quotas, [state.tat for state in states], now)
        if new_tats is None or any(
            verdict.remaining < quota.burst // 2 for verdict, quota in zip(verdicts, quotas, strict=True)
        ):
            return None  # close to the limit: the store decides, exactly
        # One key twice ("per: [ip, pass]" for a client without a pass) is one quota, as in the store's script.
        for state, tat in {id(state): (state, tat) for state, tat in zip(states, new_tats, strict=True)}.values():
            state.tat = tat
            state.pending += 1
            self.unsent[state.quota.key] = state
            self._track(state)
        if ban_key is not None:
            self.bans_to_check.add(ban_key)
        self.flusher.schedule()
        return Verdicts(verdicts)

    def learn(self, quotas: Sequence[Quota], ban_key: str | None, answer: Verdicts) -> None:
        """Keep what the store answered for a request it decided, for the requests after it."""
        if answer.fallback:
            return  # the in-process fallback's counts are this instance's own, not the shared ones
        charged = bool(answer.each) and all(verdict.allowed for verdict in answer.each)
        if ban_key is not None:
            self._learn_ban(ban_key, answer.banned_for, time.monotonic())
        now = int(time.time() * 1000)
        for quota, verdict in zip(quotas, answer.each, strict=False):
            state = self.tracked.get(quota.key)
            if not charged:
                if state is not None:
                    state.trusted = False
                elif quota.burst >= MIN_BURST:  # remembered, or its next request would start full here
                    self._track(Tracked(quota, now, trusted=False))
                continue
            tat = now + round(verdict.reset_after * 1000)
            if state is None:
                if quota.burst >= MIN_BURST:
                    self._track(Tracked(quota, tat))
            else:  # charges made here since, and not yet sent, are not in the store's answer
                state.quota = quota  # the limit may have been reloaded
                state.tat, state.trusted = tat + state.pending * milliseconds(quota.interval), True
                self.tracked.move_to_end(quota.key)

    async def flush(self) -> None:
        """Add the charges made here to the store, learn the quotas' state and the bans from it, forget idle ones."""
        unsent, self.unsent = self.unsent, {}
        ban_keys, self.bans_to_check = list(self.bans_to_check), set()
        self._forget_idle()
        if unsent or ban_keys:
            try:
                with off_request_path():
                    await self._add(list(unsent.values()), ban_keys)
            except StoreError as error:
                log.warning("rate limit charges not added to the store: %s", error)

    async def _add(self, states: list[Tracked], ban_keys: list[str]) -> None:
        """Add these quotas' unsent charges to the store and learn their state and the bans; on a StoreError the
        charges stay unsent."""
        counts = [state.pending for state in states]
        for state in states:
            state.pending = 0
        try:
            resets, bans = await self.store.add_charges(
                [(state.quota, count) for state, count in zip(states, counts, strict=True)], ban_keys
            )
        except StoreError:
            for state, count in zip(states, counts, strict=True):
                state.pending += count
                if self.tracked.get(state.quota.key) is state:  # a forgotten quota's charges are dropped
                    self.unsent[state.quota.key] = state
            self.flusher.schedule()  # to try again
            raise
        now = int(time.time() * 1000)
        for state, reset in zip(states, resets, strict=True):
            state.tat = now + round(reset * 1000) + state.pending * milliseconds(state.quota.interval)
        learned = time.monotonic()
        for ban_key, banned_for in zip(ban_keys, bans, strict=True):
            self._learn_ban(ban_key, banned_for, learned)

    def _learn_ban(self, ban_key: str, banned_for: float, learned: float) -> None:
        self.unbanned.pop(ban_key, None)
        self.banned.pop(ban_key, None)
        if banned_for > 0:  # kept until the ban ends, however long the client pauses: each request asks the store
            known, value = self.banned, learned + banned_for
        else:
            known, value = self.unbanned, learned
        known[ban_key] = value  # at the end: the most recently learned
        if len(known) > MAX_TRACKED:
            known.popitem(last=False)

    def _track(self, state: Tracked) -> None:
        """Keep a quota's state, as the most recently used."""
        self.tracked[state.quota.key] = state
        self.tracked.move_to_end(state.quota.key)
        if len(self.tracked) > MAX_TRACKED:
            self.tracked.popitem(last=False)  # an unsent charge stays in `unsent` until the next flush

    def _forget_idle(self) -> None:
        """Forget the quotas full again for IDLE_SECONDS (unused here that long: other instances may have used
        them since), what the store said about a client not being banned as long ago, and bans that have ended:
        they start afresh, as first seen."""
        now = time.time() * 1000
        horizon = now - IDLE_SECONDS * 1000
        while self.tracked:
            key, oldest = next(iter(self.tracked.items()))
            if oldest.tat > horizon or oldest.pending:
                break
            del self.tracked[key]
        learned_now = time.monotonic()
        while self.unbanned and next(iter(self.unbanned.values())) < learned_now - IDLE_SECONDS:
            self.unbanned.popitem(last=False)
        # Bans are in the order they were learned, not the order they end: one that ended behind a longer one stays
        # until that one goes, and meanwhile only costs its client a store call per request, as a ban does.
        while self.banned and next(iter(self.banned.values())) < learned_now:
            self.banned.popitem(last=False)
