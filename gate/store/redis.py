"""The shared store: Redis (or Redis Cluster) through one connection pool, scripts loaded once.

Keys are prefixed with `gate:` so gate can share a Redis with other users; every write sets an expiry.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, TypeVar
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from gate.store.base import StoreError

T = TypeVar("T")

KEY_PREFIX = "gate:"
# Short socket timeouts: a store that does not answer must not hold up requests (fail-open is the caller's choice).
DEFAULT_TIMEOUTS = {"socket_timeout": "0.5", "socket_connect_timeout": "0.5"}

# INCRBY and set the expiry only when the counter is new: one atomic round trip.
INCR_WITH_TTL = """
local value = redis.call('INCRBY', KEYS[1], ARGV[2])
if redis.call('PTTL', KEYS[1]) < 0 then
    redis.call('PEXPIRE', KEYS[1], ARGV[1])
end
return value
"""


def _with_default_timeouts(url: str) -> str:
    parts = urlsplit(url)
    query = dict(parse_qsl(parts.query))
    for name, value in DEFAULT_TIMEOUTS.items():
        query.setdefault(name, value)
    return urlunsplit(parts._replace(query=urlencode(query)))


def _milliseconds(ttl: float) -> int:
    return max(1, round(ttl * 1000))


class RedisStore:
    def __init__(self, client: Any) -> None:
        self._client = client
        self._incr = client.register_script(INCR_WITH_TTL)

    @classmethod
    def from_url(cls, url: str) -> RedisStore:
        url = _with_default_timeouts(url)
        if url.startswith("redis+cluster://"):
            client: Any = aioredis.RedisCluster.from_url("redis://" + url[len("redis+cluster://") :])
        else:
            client = aioredis.Redis.from_url(url)
        return cls(client)

    async def _call(self, operation: Callable[[], Awaitable[T]]) -> T:
        try:
            return await operation()
        except (RedisError, OSError) as error:
            raise StoreError(f"redis: {error}") from error

    async def get(self, key: str) -> bytes | None:
        value: bytes | None = await self._call(lambda: self._client.get(KEY_PREFIX + key))
        return value

    async def set(self, key: str, value: bytes, ttl: float, *, only_if_absent: bool = False) -> bool:
        done = await self._call(
            lambda: self._client.set(KEY_PREFIX + key, value, px=_milliseconds(ttl), nx=only_if_absent)
        )
        return bool(done)

    async def incr(self, key: str, ttl: float, amount: int = 1) -> int:
        value = await self._call(lambda: self._incr(keys=[KEY_PREFIX + key], args=[_milliseconds(ttl), amount]))
        return int(value)

    async def delete(self, key: str) -> bool:
        removed = await self._call(lambda: self._client.delete(KEY_PREFIX + key))
        return bool(removed)

    async def ttl(self, key: str) -> float | None:
        milliseconds = await self._call(lambda: self._client.pttl(KEY_PREFIX + key))
        return None if milliseconds < 0 else milliseconds / 1000

    async def ping(self) -> None:
        await self._call(lambda: self._client.ping())

    async def close(self) -> None:
        await self._client.aclose()
