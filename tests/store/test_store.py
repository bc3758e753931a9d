"""The store conformance suite: the memory and the Redis store behave the same; then what only one of them does."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Awaitable, Callable

import pytest
import redis.asyncio as aioredis

from gate.store import FallbackStore, MemoryStore, Quota, RedisStore, Store, StoreError, open_store
from gate.store.memory import SWEEP_EVERY
from gate.store.redis import KEY_PREFIX
from tests.support.ports import free_port

SHORT_TTL = 0.2
AFTER_SHORT_TTL = 0.35


# --- conformance: both implementations -------------------------------------------------------------------------


async def test_get_of_missing_key_is_none(store: Store, key: Callable[[str], str]) -> None:
    assert await store.get(key("missing")) is None


async def test_set_then_get_returns_the_value(store: Store, key: Callable[[str], str]) -> None:
    assert await store.set(key("k"), b"value", 10) is True
    assert await store.get(key("k")) == b"value"


async def test_set_replaces_an_existing_value(store: Store, key: Callable[[str], str]) -> None:
    await store.set(key("k"), b"first", 10)
    await store.set(key("k"), b"second", 10)
    assert await store.get(key("k")) == b"second"


async def test_set_only_if_absent_succeeds_once_and_keeps_the_first_value(
    store: Store, key: Callable[[str], str]
) -> None:
    # How a challenge is spent exactly once: the second attempt must see False.
    assert await store.set(key("challenge"), b"spent-by-first", 10, only_if_absent=True) is True
    assert await store.set(key("challenge"), b"spent-by-second", 10, only_if_absent=True) is False
    assert await store.get(key("challenge")) == b"spent-by-first"


async def test_set_only_if_absent_succeeds_again_after_expiry(store: Store, key: Callable[[str], str]) -> None:
    assert await store.set(key("challenge"), b"old", SHORT_TTL, only_if_absent=True) is True
    await asyncio.sleep(AFTER_SHORT_TTL)
    assert await store.set(key("challenge"), b"new", 10, only_if_absent=True) is True
    assert await store.get(key("challenge")) == b"new"


async def test_only_if_absent_lets_exactly_one_of_many_concurrent_writers_win(
    store: Store, key: Callable[[str], str]
) -> None:
    results = await asyncio.gather(
        *(store.set(key("challenge"), str(n).encode(), 10, only_if_absent=True) for n in range(20))
    )
    assert results.count(True) == 1


async def test_incr_creates_a_counter_with_ttl_and_counts_up(store: Store, key: Callable[[str], str]) -> None:
    assert await store.incr(key("hits"), 10) == 1
    assert await store.incr(key("hits"), 10) == 2
    assert await store.incr(key("hits"), 10, amount=5) == 7
    remaining = await store.ttl(key("hits"))
    assert remaining is not None
    assert 0 < remaining <= 10


async def test_incr_counter_reads_back_as_decimal_bytes(store: Store, key: Callable[[str], str]) -> None:
    await store.incr(key("hits"), 10, amount=3)
    assert await store.get(key("hits")) == b"3"


async def test_incr_keeps_the_original_expiry(store: Store, key: Callable[[str], str]) -> None:
    # A fixed window: later increments with a long TTL must not push the end of the window out.
    await store.incr(key("window"), SHORT_TTL)
    await store.incr(key("window"), 60)
    remaining = await store.ttl(key("window"))
    assert remaining is not None
    assert remaining <= SHORT_TTL
    await asyncio.sleep(AFTER_SHORT_TTL)
    assert await store.get(key("window")) is None
    assert await store.incr(key("window"), 60) == 1


async def test_incr_concurrent_increments_are_all_counted(store: Store, key: Callable[[str], str]) -> None:
    await asyncio.gather(*(store.incr(key("hits"), 10) for _ in range(50)))
    assert await store.get(key("hits")) == b"50"


async def test_incr_on_a_value_that_is_not_a_counter_raises_store_error(
    store: Store, key: Callable[[str], str]
) -> None:
    await store.set(key("text"), b"not a number", 10)
    with pytest.raises(StoreError):
        await store.incr(key("text"), 10)
    assert await store.get(key("text")) == b"not a number"


async def test_incr_many_counts_each_key_in_order_across_slots(store: Store) -> None:
    run = uuid.uuid4().hex
    counters = [(f"test:{{{run}-{index}}}:n", index + 1, 30.0) for index in range(5)]  # five hash tags: five slots
    await store.incr(counters[2][0], 30, 10)
    assert await store.incr_many(counters) == [1, 2, 13, 4, 5]
    assert await store.incr_many(counters[:2]) == [2, 4]
    remaining = await store.ttl(counters[0][0])
    assert remaining is not None and 29 < remaining <= 30
    assert await store.incr_many([]) == []


async def test_ttl_of_missing_key_is_none(store: Store, key: Callable[[str], str]) -> None:
    assert await store.ttl(key("missing")) is None


async def test_ttl_of_fresh_key_is_at_most_what_was_set(store: Store, key: Callable[[str], str]) -> None:
    await store.set(key("k"), b"v", 5)
    remaining = await store.ttl(key("k"))
    assert remaining is not None
    assert 0 < remaining <= 5


async def test_set_key_expires(store: Store, key: Callable[[str], str]) -> None:
    await store.set(key("k"), b"v", SHORT_TTL)
    assert await store.get(key("k")) == b"v"
    await asyncio.sleep(AFTER_SHORT_TTL)
    assert await store.get(key("k")) is None
    assert await store.ttl(key("k")) is None


async def test_counter_expires(store: Store, key: Callable[[str], str]) -> None:
    await store.incr(key("hits"), SHORT_TTL)
    await store.incr(key("hits"), SHORT_TTL)
    await asyncio.sleep(AFTER_SHORT_TTL)
    assert await store.get(key("hits")) is None
    assert await store.incr(key("hits"), SHORT_TTL) == 1


async def test_delete_returns_true_then_false(store: Store, key: Callable[[str], str]) -> None:
    await store.set(key("k"), b"v", 10)
    assert await store.delete(key("k")) is True
    assert await store.get(key("k")) is None
    assert await store.delete(key("k")) is False


async def test_delete_of_expired_key_returns_false(store: Store, key: Callable[[str], str]) -> None:
    await store.set(key("k"), b"v", SHORT_TTL)
    await asyncio.sleep(AFTER_SHORT_TTL)
    assert await store.delete(key("k")) is False


async def test_ping_answers(store: Store) -> None:
    await store.ping()


# --- memory only -------------------------------------------------------------------------------------------------


async def test_memory_max_keys_evicts_least_recently_used() -> None:
    store = MemoryStore(max_keys=3)
    for name in ("a", "b", "c"):
        await store.set(name, name.encode(), 60)
    assert await store.get("a") == b"a"  # "a" is now the most recently used; "b" the least
    await store.set("d", b"d", 60)
    assert await store.get("b") is None
    assert [await store.get(name) for name in ("a", "c", "d")] == [b"a", b"c", b"d"]


async def test_memory_incr_counts_as_use_for_eviction() -> None:
    store = MemoryStore(max_keys=2)
    await store.incr("hits", 60)
    await store.set("other", b"x", 60)
    await store.incr("hits", 60)
    await store.set("new", b"y", 60)
    assert await store.get("other") is None
    assert await store.get("hits") == b"2"


async def test_memory_never_holds_more_than_max_keys() -> None:
    store = MemoryStore(max_keys=50)
    for n in range(2000):
        await store.set(f"set:{n}", b"v", 60)
        await store.incr(f"incr:{n}", 60)
        assert len(store) <= 50
    assert len(store) == 50
    assert await store.get("incr:1999") == b"1"


async def test_memory_drops_keys_that_expired_unread() -> None:
    """Rate-limit keys of addresses seen once are never read again: they go at the next sweep, not at eviction."""
    now = [1000.0]
    store = MemoryStore(clock=lambda: now[0])
    for address in range(SWEEP_EVERY):
        await store.rate_limit([Quota(f"rl:ip:old-{address}", interval=0.05, burst=300)])
    now[0] += 1.0  # every one of them is full again: expired
    for address in range(SWEEP_EVERY):
        await store.rate_limit([Quota(f"rl:ip:new-{address}", interval=0.05, burst=300)])
    assert len(store) <= SWEEP_EVERY  # the live ones, not twice as many
    assert await store.ttl(f"rl:ip:new-{SWEEP_EVERY - 1}") is not None


def test_memory_max_keys_must_be_positive() -> None:
    with pytest.raises(ValueError, match="max_keys"):
        MemoryStore(max_keys=0)


async def test_open_store_memory_url_honours_max_keys() -> None:
    store = open_store("memory://?max_keys=10")
    assert isinstance(store, MemoryStore)
    for n in range(100):
        await store.set(str(n), b"v", 60)
    assert len(store) == 10
    assert await store.get("99") == b"v"
    assert await store.get("0") is None


def test_open_store_memory_url_without_options_uses_the_default_bound() -> None:
    store = open_store("memory://")
    assert isinstance(store, MemoryStore)
    assert store.max_keys == MemoryStore.DEFAULT_MAX_KEYS


async def test_counts_add_up_and_read_back_per_hash(store: Store, key: Callable[[str], str]) -> None:
    await store.add_counts(key("second-1"), {"requests": 3, "b2": 1}, ttl=30)
    await store.add_counts(key("second-1"), {"requests": 2, "b4": 5}, ttl=30)
    await store.add_counts(key("second-2"), {"requests": 7}, ttl=30)
    counts = await store.get_counts([key("second-1"), key("absent"), key("second-2")])
    assert counts == [{"requests": 5, "b2": 1, "b4": 5}, {}, {"requests": 7}]
    remaining = await store.ttl(key("second-1"))
    assert remaining is not None and 0 < remaining <= 30


async def test_counts_expire(store: Store, key: Callable[[str], str]) -> None:
    await store.add_counts(key("second"), {"requests": 1}, ttl=SHORT_TTL)
    await asyncio.sleep(AFTER_SHORT_TTL)
    assert await store.get_counts([key("second")]) == [{}]


async def test_scan_finds_live_keys_by_prefix_with_values_and_time_left(
    store: Store, key: Callable[[str], str]
) -> None:
    for name in ("ban:a", "ban:b", "ban:c"):
        await store.set(key(name), name.encode(), 60)
    await store.set(key("other:a"), b"x", 60)
    await store.set(key("ban:gone"), b"x", SHORT_TTL)
    await asyncio.sleep(AFTER_SHORT_TTL)
    found = await store.scan(key("ban:"), limit=100)
    assert sorted((name, value) for name, value, _ in found) == [
        (key("ban:a"), b"ban:a"),
        (key("ban:b"), b"ban:b"),
        (key("ban:c"), b"ban:c"),
    ]
    assert all(55 < left <= 60 for _, _, left in found)
    assert len(await store.scan(key("ban:"), limit=2)) == 2


async def test_scan_takes_glob_characters_literally(store: Store, key: Callable[[str], str]) -> None:
    await store.set(key("ban:[x]*"), b"1", 60)
    await store.set(key("ban:xy"), b"2", 60)
    assert [value for _, value, _ in await store.scan(key("ban:[x]*"), limit=10)] == [b"1"]


# --- redis only --------------------------------------------------------------------------------------------------


async def test_redis_url_opens_a_redis_store_behind_a_fallback(redis_url: str) -> None:
    store = open_store(redis_url)
    try:
        assert isinstance(store, FallbackStore) and isinstance(store.shared, RedisStore)
        await store.ping()
    finally:
        await store.close()


async def test_redis_every_written_key_has_a_ttl_in_redis(
    redis_url: str, raw_redis: aioredis.Redis, key: Callable[[str], str]
) -> None:
    store = RedisStore.from_url(redis_url)
    try:
        await store.set(key("plain"), b"v", 30)
        await store.set(key("once"), b"v", 30, only_if_absent=True)
        await store.incr(key("counter"), 30)
        await store.incr(key("counter"), 30)
    finally:
        await store.close()
    for name in ("plain", "once", "counter"):
        milliseconds = await raw_redis.pttl(KEY_PREFIX + key(name))
        assert 0 < milliseconds <= 30_000, name


async def test_redis_keys_live_under_the_gate_prefix(
    redis_url: str, raw_redis: aioredis.Redis, key: Callable[[str], str]
) -> None:
    store = RedisStore.from_url(redis_url)
    try:
        await store.set(key("k"), b"v", 30)
    finally:
        await store.close()
    assert await raw_redis.get(f"gate:{key('k')}") == b"v"
    assert await raw_redis.exists(key("k")) == 0


async def test_redis_sub_millisecond_ttl_still_expires(
    redis_url: str, raw_redis: aioredis.Redis, key: Callable[[str], str]
) -> None:
    store = RedisStore.from_url(redis_url)
    try:
        await store.set(key("k"), b"v", 0.0001)
        await store.incr(key("c"), 0.0001)
        await asyncio.sleep(0.05)
        assert await store.get(key("k")) is None
        assert await store.get(key("c")) is None
    finally:
        await store.close()


@pytest.mark.parametrize("operation", ["ping", "get", "set", "incr"])
async def test_redis_unreachable_raises_store_error_quickly(operation: str) -> None:
    store = RedisStore.from_url(f"redis://127.0.0.1:{free_port()}/0")
    calls: dict[str, Callable[[], Awaitable[object]]] = {
        "ping": store.ping,
        "get": lambda: store.get("k"),
        "set": lambda: store.set("k", b"v", 10),
        "incr": lambda: store.incr("k", 10),
    }
    started = time.monotonic()
    try:
        with pytest.raises(StoreError):
            await asyncio.wait_for(calls[operation](), timeout=5)
    finally:
        await store.close()
    assert time.monotonic() - started < 2
