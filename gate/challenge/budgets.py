"""Pass-token budgets: each request on a pass counts against its token's budget, shared by every instance.

Counting every request in the shared store costs a round trip per request, and a budget needs no such exactness:
it bounds how much one solved challenge buys, roughly, not to the request. So a token's first request on an
instance (or its first after a pause) is counted in the store and waits for the total; while the token stays in
use its requests are counted here and added to the store, all tokens in one call, every FLUSH_SECONDS, which also
brings back what other instances counted. A busy token can therefore overshoot its budget by what the instances
let through in one flush interval; a token used now and then is counted exactly.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from gate.later import FlushLater
from gate.store import Store, StoreError, off_request_path

log = logging.getLogger("gate.challenge")

FLUSH_SECONDS = 0.1
STALE_SECONDS = 2 * FLUSH_SECONDS  # a total older than this is learned again from the store before it is trusted
IDLE_SECONDS = 1.0  # a token unused this long is forgotten
MAX_TRACKED = 65536  # tokens counted here at once; beyond, every request is counted in the store


@dataclass(slots=True)
class Tally:
    key: str
    budget: int
    expires: float
    network: str
    known: int = 0  # the total over every instance, as last learned from the store
    synced_at: float = -math.inf  # when `known` was learned
    pending: int = 0  # counted here since, not yet added to the store
    last_used: float = 0.0


class PassBudgets:
    def __init__(self, store: Store, on_used_up: Callable[[str], Awaitable[None]]) -> None:
        """`on_used_up(network)` runs once, over every instance, when a token's total first passes its budget."""
        self.store = store
        self.on_used_up = on_used_up
        self.tallies: dict[str, Tally] = {}
        self.flusher = FlushLater(FLUSH_SECONDS, self.flush)

    async def count(self, token_id: str, budget: int, expires: float, network: str) -> int:
        """Count one request on the token and return its total so far, over every instance as far as known.

        Raises StoreError when a count that must reach the store cannot (the caller decides what the pass is worth).
        """
        now = time.monotonic()
        tally = self.tallies.get(token_id)
        if tally is None:
            tally = Tally(f"pass:{token_id}", budget, expires, network)
            if len(self.tallies) < MAX_TRACKED:
                self.tallies[token_id] = tally
        tally.pending += 1
        tally.last_used = now
        if now - tally.synced_at > STALE_SECONDS or tally.known + tally.pending == budget + 1:
            await self._add(tally)  # first use, a pause, or the budget runs out here: the store decides now
        self.flusher.schedule()
        return tally.known + tally.pending

    async def flush(self) -> None:
        """Add every pending count to the store, in one call, and learn the totals; forget tokens that went idle."""
        now = time.monotonic()
        for token_id, tally in list(self.tallies.items()):
            if not tally.pending and now - tally.last_used > IDLE_SECONDS:
                del self.tallies[token_id]
        pending = [tally for tally in self.tallies.values() if tally.pending]
        if pending:
            try:
                with off_request_path():
                    await self._add(*pending)
            except StoreError as error:
                log.warning("pass budget counts not added: %s", error)
        if self.tallies:
            self.flusher.schedule()  # to forget the idle ones, if nothing else

    async def _add(self, *tallies: Tally) -> None:
        """Add the tallies' pending counts to the store and learn their totals; on a StoreError they stay pending."""
        amounts = [tally.pending for tally in tallies]
        for tally in tallies:
            tally.pending = 0  # what is counted while the store answers waits for the next add
        wall = time.time()
        try:
            totals = await self.store.incr_many(
                [
                    (tally.key, amount, max(1.0, tally.expires - wall))
                    for tally, amount in zip(tallies, amounts, strict=True)
                ]
            )
        except StoreError:
            for tally, amount in zip(tallies, amounts, strict=True):
                tally.pending += amount
            raise
        learned = time.monotonic()
        for tally, amount, total in zip(tallies, amounts, totals, strict=True):
            tally.known, tally.synced_at = total, learned
            if total - amount <= tally.budget < total:  # this addition crossed the budget: once over every instance
                await self.on_used_up(tally.network)
