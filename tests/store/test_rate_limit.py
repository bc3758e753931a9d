"""GCRA rate limits, the same in both stores: bursts, sustained rates within ±5 %, nothing charged on refusal."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

import redis.asyncio as aioredis

from gate.store import Quota, Store
from gate.store.redis import KEY_PREFIX


async def test_a_burst_is_allowed_at_once_then_refused(store: Store, key: Callable[[str], str]) -> None:
    quota = Quota(key("burst"), interval=10.0, burst=5)
    verdicts = [(await store.rate_limit([quota]))[0] for _ in range(6)]
    assert [verdict.allowed for verdict in verdicts] == [True] * 5 + [False]
    assert [verdict.remaining for verdict in verdicts[:5]] == [4, 3, 2, 1, 0]
    assert 9.0 < verdicts[5].retry_after <= 10.0


async def test_a_refused_request_charges_no_quota(store: Store, key: Callable[[str], str]) -> None:
    roomy = Quota(key("roomy"), interval=1.0, burst=100)
    tight = Quota(key("tight"), interval=60.0, burst=1)
    assert all(verdict.allowed for verdict in await store.rate_limit([roomy, tight]))
    refused = await store.rate_limit([roomy, tight])
    assert [verdict.allowed for verdict in refused] == [True, False]
    assert (await store.rate_limit([roomy]))[0].remaining == 98  # only the first request was charged


async def test_the_sustained_rate_is_kept_within_five_percent(store: Store, key: Callable[[str], str]) -> None:
    quota = Quota(key("sustained"), interval=0.02, burst=5)  # 50 per second after a burst of 5
    allowed, seconds = 0, 2.0
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        allowed += (await store.rate_limit([quota]))[0].allowed
        await asyncio.sleep(0.001)
    expected = 5 + seconds / 0.02
    assert abs(allowed - expected) <= 0.05 * expected, (allowed, expected)


async def test_no_edge_of_a_window_doubles_the_rate(store: Store, key: Callable[[str], str]) -> None:
    quota = Quota(key("edge"), interval=0.1, burst=3)
    first = [(await store.rate_limit([quota]))[0].allowed for _ in range(10)]
    await asyncio.sleep(0.1)  # one interval later there is room for exactly one more, not a fresh burst
    second = [(await store.rate_limit([quota]))[0].allowed for _ in range(10)]
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
