"""Pass budgets counted in batches: exact for a token's first request and for one instance, shared through the store
within a flush interval for busy tokens, bounded in memory."""

from __future__ import annotations

import asyncio
import time

from gate.challenge import budgets
from gate.challenge.budgets import PassBudgets
from gate.store import MemoryStore, Store

EXPIRES = time.time() + 3600


def counter(store: Store) -> tuple[PassBudgets, list[str]]:
    burned: list[str] = []

    async def used_up(network: str) -> None:
        burned.append(network)

    return PassBudgets(store, used_up), burned


async def test_one_instance_counts_every_request_and_burns_once_when_the_budget_runs_out() -> None:
    passes, burned = counter(MemoryStore())
    totals = [await passes.count("t", 3, EXPIRES, "203.0.113.0/24") for _ in range(6)]
    assert totals == [1, 2, 3, 4, 5, 6]
    await passes.flush()
    assert burned == ["203.0.113.0/24"]


async def test_a_busy_token_costs_one_store_call_per_flush() -> None:
    store = MemoryStore()
    passes, _ = counter(store)
    for _ in range(50):
        await passes.count("t", 1000, EXPIRES, "net")
    assert await store.get("pass:t") == b"1"  # only the first request waited for the store
    await passes.flush()
    assert await store.get("pass:t") == b"50"


async def test_instances_sharing_a_store_learn_each_others_counts_at_each_flush() -> None:
    store = MemoryStore()
    first, burned_first = counter(store)
    second, burned_second = counter(store)
    for _ in range(4):
        await first.count("t", 5, EXPIRES, "net")
    await first.flush()
    assert await second.count("t", 5, EXPIRES, "net") == 5  # a first count asks the store
    assert await second.count("t", 5, EXPIRES, "net") == 6  # over the budget on the second instance
    await second.flush()
    await first.flush()
    assert burned_first + burned_second == ["net"]  # the crossing is reported once over both


async def test_pending_counts_are_flushed_by_themselves() -> None:
    store = MemoryStore()
    passes, _ = counter(store)
    await passes.count("t", 100, EXPIRES, "net")
    await passes.count("t", 100, EXPIRES, "net")
    await asyncio.sleep(budgets.FLUSH_SECONDS * 3)
    assert await store.get("pass:t") == b"2"


async def test_an_idle_token_is_forgotten_and_counted_in_the_store_again(monkeypatch) -> None:
    store = MemoryStore()
    passes, _ = counter(store)
    await passes.count("t", 100, EXPIRES, "net")
    monkeypatch.setattr(budgets, "IDLE_SECONDS", 0.0)
    await passes.flush()
    assert passes.tallies == {}
    await store.incr("pass:t", ttl=60, amount=10)  # another instance's counts
    assert await passes.count("t", 100, EXPIRES, "net") == 12


async def test_tokens_counted_here_are_bounded(monkeypatch) -> None:
    monkeypatch.setattr(budgets, "MAX_TRACKED", 3)
    passes, _ = counter(MemoryStore())
    for token in "abcdef":
        await passes.count(token, 100, EXPIRES, "net")
    assert len(passes.tallies) == 3
    assert await passes.count("f", 100, EXPIRES, "net") == 2  # untracked: counted in the store, still exact
