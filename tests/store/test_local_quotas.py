"""Rate limits charged in-process while a client is far from them (gate/local_quotas.py), against every store: the
shared count still sees every request, a limit is kept exactly once a client comes near it, instances learn what
the others counted and which clients were banned (letting at most half a burst through before they do), and small
bursts are always the store's to decide."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from gate import local_quotas
from gate.local_quotas import MIN_BURST, LocalQuotas
from gate.store import Quota, Store, Verdicts


@pytest.fixture(autouse=True)
def flushes_only_when_called(monkeypatch: pytest.MonkeyPatch) -> None:
    """The tests flush when a step needs it. A timer's flush between two steps (a slow store call is enough) would
    take the ban checks and charges a later step's flush expects, and could reopen the store after it closed."""
    monkeypatch.setattr(local_quotas, "FLUSH_SECONDS", 3600.0)


class CountingStore:
    """A store that counts the rate_limit calls that reach it."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self.decided = 0

    async def rate_limit(self, quotas: list[Quota], ban_key: str | None = None) -> Verdicts:
        self.decided += 1
        return await self.store.rate_limit(quotas, ban_key)

    def __getattr__(self, name: str) -> object:
        return getattr(self.store, name)


async def allowed(local: LocalQuotas, quota: Quota, requests: int, ban_key: str | None = None) -> int:
    """How many of `requests` one after the other the quota lets through."""
    let_through = 0
    for _ in range(requests):
        answer = await local.rate_limit([quota], ban_key)
        let_through += bool(answer.each) and answer.each[0].allowed
    return let_through


async def test_a_client_far_from_its_limit_is_charged_here_and_every_request_reaches_the_store(
    store: Store, key: Callable[[str], str]
) -> None:
    counting = CountingStore(store)
    local = LocalQuotas(counting)  # type: ignore[arg-type]  # a Store by delegation
    quota = Quota(key("far"), interval=60.0, burst=100)
    assert await allowed(local, quota, 40, key("ban")) == 40
    assert counting.decided == 0  # a client first seen here starts with full quotas, and no ban
    await local.flush()
    shared = (await store.rate_limit([quota])).each[0]
    assert shared.remaining == 100 - 41  # the 40 requests and this one


async def test_a_client_another_instance_used_up_gets_at_most_half_a_burst_here(
    store: Store, key: Callable[[str], str]
) -> None:
    quota = Quota(key("used-up"), interval=60.0, burst=20)
    await store.add_charges([(quota, 20)])  # another instance let the whole burst through
    local = LocalQuotas(store)
    assert await allowed(local, quota, 30) == 10
    await local.flush()


async def test_a_client_banned_elsewhere_is_refused_from_the_flush_that_learns_it(
    store: Store, key: Callable[[str], str]
) -> None:
    await store.set(key("banned"), b"{}", 30)
    counting = CountingStore(store)
    local = LocalQuotas(counting)  # type: ignore[arg-type]
    quota = Quota(key("banned-client"), interval=1.0, burst=100)
    assert await allowed(local, quota, 3, key("banned")) == 3  # not yet known here
    await local.flush()
    assert await allowed(local, quota, 3, key("banned")) == 0
    assert counting.decided == 3  # each request of a banned client asks the store: the ban may be lifted
    await store.delete(key("banned"))
    assert await allowed(local, quota, 1, key("banned")) == 1
    await local.flush()


async def test_a_banned_client_asks_the_store_after_a_pause_until_its_ban_ends(
    store: Store, key: Callable[[str], str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(local_quotas, "IDLE_SECONDS", 0.0)  # every flush forgets what is idle
    await store.set(key("paused-ban"), b"{}", 30)
    local = LocalQuotas(store)
    quota = Quota(key("paused"), interval=1.0, burst=100)
    assert await allowed(local, quota, 1, key("paused-ban")) == 1  # not yet known here
    await local.flush()  # learns the ban
    await local.flush()  # a pause: what was learned longer ago than IDLE_SECONDS goes, but not a ban that lasts
    assert key("paused-ban") in local.banned
    assert await allowed(local, quota, 3, key("paused-ban")) == 0


async def test_after_a_refusal_even_a_quota_first_seen_in_it_asks_the_store(
    store: Store, key: Callable[[str], str]
) -> None:
    used_up = Quota(key("refused"), interval=60.0, burst=100)
    await store.add_charges([(used_up, 100)])
    counting = CountingStore(store)
    local = LocalQuotas(counting)  # type: ignore[arg-type]
    assert await allowed(local, Quota(key("reloaded-too"), interval=60.0, burst=100), 1) == 1
    reloaded = Quota(key("reloaded-too"), interval=60.0, burst=50)  # so the store decides the next request
    refused = await local.rate_limit([used_up, reloaded])
    assert not refused.each[0].allowed
    assert await allowed(local, used_up, 3) == 0
    assert counting.decided == 4
    await local.flush()


async def test_near_its_limit_a_client_is_decided_by_the_store_exactly(store: Store, key: Callable[[str], str]) -> None:
    counting = CountingStore(store)
    local = LocalQuotas(counting)  # type: ignore[arg-type]
    quota = Quota(key("near"), interval=60.0, burst=20)
    assert await allowed(local, quota, 30) == 20  # not one more, though half of them were never sent one by one
    assert counting.decided > 10
    await local.flush()
    assert not (await store.rate_limit([quota])).each[0].allowed


async def test_instances_learn_what_the_others_charged_at_each_flush(store: Store, key: Callable[[str], str]) -> None:
    first, second = LocalQuotas(store), LocalQuotas(store)
    quota = Quota(key("shared"), interval=60.0, burst=100)
    assert await allowed(second, quota, 1) == 1
    assert await allowed(first, quota, 30) == 30
    await first.flush()
    assert await allowed(second, quota, 1) == 1  # decided here, on what it knew before the other's 30
    await second.flush()  # adds its charge and learns the quota's state, the other's charges included
    verdict = (await second.rate_limit([quota])).each[0]
    assert verdict.remaining == 100 - 33  # 1 + 30 + 1, and this one


async def test_a_ban_set_by_another_instance_is_learned_at_the_next_flush(
    store: Store, key: Callable[[str], str]
) -> None:
    local = LocalQuotas(store)
    quota = Quota(key("to-ban"), interval=1.0, burst=100)
    assert await allowed(local, quota, 2, key("ban")) == 2
    await store.set(key("ban"), b"{}", 30)  # another instance bans the client
    await local.flush()
    banned = await local.rate_limit([quota], key("ban"))
    assert banned.banned_for > 29 and banned.each == []


async def test_small_bursts_are_always_decided_by_the_store(store: Store, key: Callable[[str], str]) -> None:
    counting = CountingStore(store)
    local = LocalQuotas(counting)  # type: ignore[arg-type]
    quota = Quota(key("small"), interval=1.0, burst=MIN_BURST - 1)
    await allowed(local, quota, 5)
    assert counting.decided == 5
    assert not local.tracked


async def test_a_limit_changed_by_a_reload_is_decided_by_the_store_again(
    store: Store, key: Callable[[str], str]
) -> None:
    counting = CountingStore(store)
    local = LocalQuotas(counting)  # type: ignore[arg-type]
    assert await allowed(local, Quota(key("reloaded"), interval=60.0, burst=100), 3) == 3
    tightened = Quota(key("reloaded"), interval=60.0, burst=10)
    decided = counting.decided
    assert await allowed(local, tightened, 1) == 1
    assert counting.decided == decided + 1  # the store, with the new burst; what was let through here first
    await local.flush()
    assert (await store.rate_limit([tightened])).each[0].remaining == 10 - 5


async def test_one_key_asked_twice_in_a_request_is_charged_once(store: Store, key: Callable[[str], str]) -> None:
    """`per: [ip, pass]` for a client without a pass names the same key twice, which the store charges once."""
    local = LocalQuotas(store)
    quota = Quota(key("twice"), interval=60.0, burst=100)
    for _ in range(5):
        assert all(verdict.allowed for verdict in (await local.rate_limit([quota, quota])).each)
    await local.flush()
    assert (await store.rate_limit([quota])).each[0].remaining == 100 - 6


async def test_what_a_worker_keeps_of_its_clients_is_bounded(
    store: Store, key: Callable[[str], str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A flood of new addresses fills the maps up to MAX_TRACKED, and the least recently seen go."""
    monkeypatch.setattr(local_quotas, "MAX_TRACKED", 5)
    local = LocalQuotas(store)
    for client in range(20):
        assert await allowed(local, Quota(key(f"client-{client}"), interval=60.0, burst=100), 1, key(f"ban-{client}"))
    await local.flush()
    assert list(local.tracked) == [key(f"client-{client}") for client in range(15, 20)]
    assert len(local.unbanned) == 5  # learned in one flush, in no particular order
    assert not local.unsent
