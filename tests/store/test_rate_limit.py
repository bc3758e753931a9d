"""GCRA rate limits, the same in every store: bursts, sustained rates within ±5 %, nothing charged on refusal,
bans that stop the charge, and quotas spread over several cluster slots."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Callable

import redis.asyncio as aioredis

from gate.store import Quota, Store, Verdicts
from gate.store.redis import KEY_PREFIX


async def test_a_burst_is_allowed_at_once_then_refused(store: Store, key: Callable[[str], str]) -> None:
    quota = Quota(key("burst"), interval=10.0, burst=5)
    verdicts = [(await store.rate_limit([quota])).each[0] for _ in range(6)]
    assert [verdict.allowed for verdict in verdicts] == [True] * 5 + [False]
    assert [verdict.remaining for verdict in verdicts[:5]] == [4, 3, 2, 1, 0]
    assert 9.0 < verdicts[5].retry_after <= 10.0


async def test_a_refused_request_charges_no_quota(store: Store, key: Callable[[str], str]) -> None:
    roomy = Quota(key("roomy"), interval=1.0, burst=100)
    tight = Quota(key("tight"), interval=60.0, burst=1)
    assert all(verdict.allowed for verdict in (await store.rate_limit([roomy, tight])).each)
    refused = (await store.rate_limit([roomy, tight])).each
    assert [verdict.allowed for verdict in refused] == [True, False]
    assert (await store.rate_limit([roomy])).each[0].remaining == 98  # only the first request was charged


async def test_the_sustained_rate_is_never_five_percent_over(store: Store, key: Callable[[str], str]) -> None:
    quota = Quota(key("sustained"), interval=0.02, burst=5)  # 50 per second after a burst of 5
    await store.ping()  # connect (and learn a cluster's slots) before the clock starts: a loaded CI lost 0.2 s there
    seconds = 2.0
    deadline = time.monotonic() + seconds

    async def hammer() -> int:
        """Ask far faster than the rate (several of these at once, so a slow round trip cannot starve the quota)."""
        allowed = 0
        while time.monotonic() < deadline:
            allowed += (await store.rate_limit([quota])).each[0].allowed
            await asyncio.sleep(0.001)
        return allowed

    allowed = sum(await asyncio.gather(*(hammer() for _ in range(4))))
    expected = 5 + seconds / 0.02
    assert allowed <= 1.05 * expected, (allowed, expected)  # never more than 5 % over the rate
    # Nor far under it (a request charged twice would let half through). Not 5 % under: while this process is
    # preempted on a loaded machine nobody asks, and time the quota cannot save beyond its burst is lost (CI saw 95
    # of 105 with Sentinel).
    assert allowed >= 0.85 * expected, (allowed, expected)


async def test_no_edge_of_a_window_doubles_the_rate(store: Store, key: Callable[[str], str]) -> None:
    # The twelve calls must take less than an interval together (a Sentinel round trip on a loaded CI machine is
    # 10-20 ms), or the time they take itself makes room for another request.
    quota = Quota(key("edge"), interval=0.5, burst=3)
    first = [(await store.rate_limit([quota])).each[0].allowed for _ in range(6)]
    await asyncio.sleep(0.5)  # one interval later there is room for exactly one more, not a fresh burst
    second = [(await store.rate_limit([quota])).each[0].allowed for _ in range(6)]
    assert sum(first) == 3
    assert sum(second) == 1


async def test_rate_limit_keys_expire_when_their_quota_is_full_again(
    store: Store,
    key: Callable[[str], str],
    raw_redis: aioredis.Redis,
) -> None:
    quota = Quota(key("ttl"), interval=0.05, burst=2)
    await store.rate_limit([quota])
    remaining = await store.ttl(quota.key)
    assert remaining is not None and 0 < remaining <= 0.05
    await asyncio.sleep(0.1)
    assert await store.get(quota.key) is None
    if await raw_redis.exists(KEY_PREFIX + quota.key):  # only when this run was the Redis store
        raise AssertionError("key outlived its quota")


async def test_a_ban_refuses_without_charging(store: Store, key: Callable[[str], str]) -> None:
    quota = Quota(key("banned-client"), interval=1.0, burst=10)
    assert (await store.rate_limit([quota], key("ban"))).banned_for == 0
    await store.set(key("ban"), b"{}", 30)
    banned = await store.rate_limit([quota], key("ban"))
    assert 29 < banned.banned_for <= 30
    assert banned.each == []
    await store.delete(key("ban"))
    assert (await store.rate_limit([quota], key("ban"))).each[0].remaining == 8  # the banned request cost nothing


async def test_a_ban_is_found_with_no_quota_to_charge(store: Store, key: Callable[[str], str]) -> None:
    assert await store.rate_limit([], key("ban")) == Verdicts([])
    await store.set(key("ban"), b"{}", 30)
    assert (await store.rate_limit([], key("ban"))).banned_for > 29


async def test_quotas_under_different_hash_tags_are_all_charged_in_order(store: Store) -> None:
    """In a cluster these keys live in different slots: each slot is charged in its own script, the verdicts come
    back in the order asked."""
    run = uuid.uuid4().hex
    quotas = [Quota(f"test:{{{run}-{index}}}:q", interval=60.0, burst=index + 1) for index in range(6)]
    first = await store.rate_limit(quotas)
    assert [verdict.remaining for verdict in first.each] == [0, 1, 2, 3, 4, 5]
    second = await store.rate_limit(quotas)
    assert [verdict.allowed for verdict in second.each] == [False, True, True, True, True, True]


async def test_charges_added_later_count_like_requests_and_report_bans(store: Store, key: Callable[[str], str]) -> None:
    """What gate/local_quotas.py let through in-process reaches the shared quota: never refused, even past the
    burst, and the quota refuses the next request until the added charges have drained."""
    quota = Quota(key("added"), interval=10.0, burst=5)
    other = Quota(key("other"), interval=1.0, burst=100)
    await store.set(key("ban"), b"{}", 30)
    resets, bans = await store.add_charges([(quota, 7), (other, 1)], [key("ban"), key("no-ban")])
    assert 69 < resets[0] <= 70 and 0.9 < resets[1] <= 1.0  # 7 charges of 10 s are 70 s ahead, never refused
    assert 29 < bans[0] <= 30 and bans[1] == 0
    refused = (await store.rate_limit([quota])).each[0]
    assert not refused.allowed and 29 < refused.retry_after <= 30  # 70 s ahead, 50 s of tolerance
    assert await store.add_charges([]) == ([], [])


async def test_charges_under_different_hash_tags_are_added_in_order(store: Store) -> None:
    run = uuid.uuid4().hex
    quotas = [Quota(f"test:{{{run}-{index}}}:q", interval=60.0, burst=10) for index in range(6)]
    resets, bans = await store.add_charges(
        [(quota, index + 1) for index, quota in enumerate(quotas)], [f"ban:{{{run}-{index}}}" for index in range(3)]
    )
    assert [round(reset) for reset in resets] == [60, 120, 180, 240, 300, 360]
    assert bans == [0.0, 0.0, 0.0]
