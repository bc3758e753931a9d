"""The shared store behind a deadline: when Redis is down or silent, an in-process store answers in time, limits
still hold (per instance), a metric says so, and Redis is used again as soon as it answers."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Sequence
from pathlib import Path

import pytest
import redis.asyncio as aioredis
from prometheus_client import REGISTRY

from gate.store import FallbackStore, Quota, RedisStore, StoreError, off_request_path
from gate.store.fallback import FAILURES_TO_SWITCH, RETRY_SECONDS
from tests.support.ports import free_port, stop
from tests.support.redis_server import start_redis_server

TIMEOUT = 0.05


def fallback_gauge() -> float | None:
    return REGISTRY.get_sample_value("gate_store_fallback")


def errors(operation: str) -> float:
    return REGISTRY.get_sample_value("gate_store_errors_total", {"operation": operation}) or 0.0


@pytest.fixture
async def silent_server() -> AsyncIterator[int]:
    """A TCP listener that accepts and never answers: a Redis that hangs."""

    async def hold(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read()
        writer.close()

    server = await asyncio.start_server(hold, "127.0.0.1", 0)
    try:
        yield server.sockets[0].getsockname()[1]
    finally:
        server.close()


async def test_a_down_redis_is_answered_for_by_the_fallback_with_limits_kept() -> None:
    store = FallbackStore(RedisStore.from_url(f"redis://127.0.0.1:{free_port()}/0"), TIMEOUT)
    before = errors("rate_limit")
    try:
        quota = Quota("{client}rl", interval=60.0, burst=2)
        answers = [await store.rate_limit([quota]) for _ in range(4)]
        assert [answer.each[0].allowed for answer in answers] == [True, True, False, False]  # still limited
        assert all(answer.fallback for answer in answers)
        assert store.degraded
        assert fallback_gauge() == 1
        assert errors("rate_limit") == before + FAILURES_TO_SWITCH  # then calls skip Redis until the retry time
        assert await store.set("spent", b"1", 60, only_if_absent=True)
        assert not await store.set("spent", b"1", 60, only_if_absent=True)
    finally:
        await store.close()


async def test_a_silent_redis_holds_no_call_up_beyond_the_timeout(silent_server: int) -> None:
    store = FallbackStore(RedisStore.from_url(f"redis://127.0.0.1:{silent_server}/0"), TIMEOUT)

    async def timed(number: int) -> tuple[float, bool]:
        started = time.monotonic()
        answer = await store.rate_limit([Quota(f"{{client-{number}}}rl", interval=1.0, burst=5)])
        return time.monotonic() - started, answer.fallback and answer.each[0].allowed

    try:
        results = await asyncio.gather(*(timed(number) for number in range(90)))
    finally:
        await store.close()
    assert all(answered for _, answered in results)
    # Each of 90 calls at once is answered near the 50 ms deadline; well before redis-py's own 0.5 s socket
    # timeout, which is what a call whose cancellation got lost would wait for.
    assert max(seconds for seconds, _ in results) < 0.35


async def test_redis_is_used_again_once_it_answers(tmp_path: Path) -> None:
    port = free_port()
    store = FallbackStore(RedisStore.from_url(f"redis://127.0.0.1:{port}/0"), TIMEOUT)
    try:
        for _ in range(FAILURES_TO_SWITCH):
            await store.incr("hits", 60)  # Redis is not there yet: the fallback counts
        assert store.degraded
        process = start_redis_server(tmp_path, port)
        try:
            await asyncio.sleep(RETRY_SECONDS + 0.1)
            assert await store.incr("hits", 60) == 1  # Redis's own counter, which never saw the others
            assert not store.degraded
            assert fallback_gauge() == 0
            assert await store.shared.get("hits") == b"1"
        finally:
            stop(process)
    finally:
        await store.close()


async def test_one_slow_answer_falls_back_alone_without_switching(silent_server: int) -> None:
    store = FallbackStore(RedisStore.from_url(f"redis://127.0.0.1:{silent_server}/0"), TIMEOUT)
    try:
        answer = await store.rate_limit([Quota("{client}rl", interval=1.0, burst=5)])
        assert answer.fallback and not store.degraded  # one miss is a miss, not an outage
    finally:
        await store.close()


async def test_a_redis_out_of_memory_counts_as_down(redis_url: str, raw_redis: aioredis.Redis) -> None:
    store = FallbackStore(RedisStore.from_url(redis_url), 1.0)
    policy = str((await raw_redis.config_get("maxmemory-policy"))["maxmemory-policy"])
    try:
        await raw_redis.config_set("maxmemory-policy", "noeviction")
        await raw_redis.config_set("maxmemory", "1")
        answer = await store.rate_limit([Quota("{oom}rl", interval=1.0, burst=5)])
        assert answer.fallback and answer.each[0].allowed
    finally:
        await raw_redis.config_set("maxmemory", "0")
        await raw_redis.config_set("maxmemory-policy", policy)
        await store.close()


async def test_a_refusal_by_redis_itself_is_an_error_not_an_outage(redis_url: str) -> None:
    store = FallbackStore(RedisStore.from_url(redis_url), 1.0)
    try:
        await store.set("{t}text", b"not a number", 60)
        with pytest.raises(StoreError):
            await store.incr("{t}text", 60)
        assert not store.degraded
    finally:
        await store.shared.delete("{t}text")
        await store.close()


SHARED_RESET = 42.0


class SlowStore:
    """A shared store whose add_charges answers, recognisably, but only after `delay` seconds."""

    def __init__(self, delay: float, prompt: bool) -> None:
        self.delay = delay
        self.prompt_operations = frozenset({"add_charges"}) if prompt else frozenset()

    async def add_charges(
        self, charges: Sequence[tuple[Quota, int]], ban_keys: Sequence[str] = ()
    ) -> tuple[list[float], list[float]]:
        await asyncio.sleep(self.delay)
        return [SHARED_RESET] * len(charges), [0.0] * len(ban_keys)

    async def close(self) -> None:
        return None


@pytest.mark.parametrize("prompt", [True, False], ids=["cancelled-in-place", "abandoned-task"])
async def test_batches_off_the_request_path_wait_longer_for_the_shared_store(prompt: bool) -> None:
    """A flush's batch waits past --store-timeout: answered by the fallback, it would be counted there instead."""
    store = FallbackStore(SlowStore(4 * TIMEOUT, prompt), TIMEOUT)  # type: ignore[arg-type]  # a Store in part
    charges = [(Quota("{client}rl", interval=1.0, burst=5), 1)]
    try:
        on_path, _ = await store.add_charges(charges)
        with off_request_path():
            off_path, _ = await store.add_charges(charges)
        after, _ = await store.add_charges(charges)
    finally:
        await store.close()
    assert on_path != [SHARED_RESET]  # a request's call: the fallback answered at the deadline
    assert off_path == [SHARED_RESET]
    assert after != [SHARED_RESET]  # the longer wait ended with the block
