"""Fixtures for the store suites: each test runs against the memory store and a real Redis."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Callable

import pytest
import redis.asyncio as aioredis

from gate.store import MemoryStore, RedisStore, Store


@pytest.fixture(params=["memory", "redis"])
async def store(request: pytest.FixtureRequest) -> AsyncIterator[Store]:
    if request.param == "memory":
        opened: Store = MemoryStore()
    else:
        opened = RedisStore.from_url(request.getfixturevalue("redis_url"))
    try:
        yield opened
    finally:
        await opened.close()


@pytest.fixture
def key() -> Callable[[str], str]:
    """Key names unique to one test, so tests sharing the session's Redis never see each other's keys."""
    namespace = f"test:{uuid.uuid4().hex}:"
    return lambda name: namespace + name


@pytest.fixture
async def raw_redis(redis_url: str) -> AsyncIterator[aioredis.Redis]:
    client = aioredis.Redis.from_url(redis_url)
    try:
        yield client
    finally:
        await client.aclose()
