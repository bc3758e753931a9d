"""Fixtures for the store suites: each test runs against the memory store, a real Redis (directly and behind the
in-process fallback gate uses in production), a Redis Sentinel and a three-node Redis Cluster."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Callable

import pytest
import redis.asyncio as aioredis

from gate.store import FallbackStore, MemoryStore, RedisStore, Store

REDIS_URLS = {"redis": "redis_url", "sentinel": "redis_sentinel_url", "cluster": "redis_cluster_url"}
CONFORMANCE_TIMEOUT = 2.0  # generous: the conformance suite checks semantics, not the deadline


@pytest.fixture(params=["memory", "redis", "fallback", "sentinel", "cluster"])
async def store(request: pytest.FixtureRequest) -> AsyncIterator[Store]:
    if request.param == "memory":
        opened: Store = MemoryStore()
    elif request.param == "fallback":
        opened = FallbackStore(RedisStore.from_url(request.getfixturevalue("redis_url")), CONFORMANCE_TIMEOUT)
    else:
        opened = RedisStore.from_url(request.getfixturevalue(REDIS_URLS[request.param]))
    try:
        yield opened
    finally:
        await opened.close()


@pytest.fixture
def key() -> Callable[[str], str]:
    """Key names unique to one test, so tests sharing the session's Redis never see each other's keys. They share
    one hash tag, as gate's keys about one client do, so a cluster keeps them in one slot."""
    namespace = f"test:{{{uuid.uuid4().hex}}}:"
    return lambda name: namespace + name


@pytest.fixture
async def raw_redis(redis_url: str) -> AsyncIterator[aioredis.Redis]:
    client = aioredis.Redis.from_url(redis_url)
    try:
        yield client
    finally:
        await client.aclose()
