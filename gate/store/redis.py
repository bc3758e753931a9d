"""The shared store: Redis (or Redis Cluster) through one connection pool, scripts loaded once.

Keys are prefixed with `gate:` so gate can share a Redis with other users; every write sets an expiry.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from typing import Any, TypeVar
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from gate.store.base import Quota, StoreError, Verdict
from gate.store.gcra import milliseconds

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


# GCRA over several keys, atomically, on the server's clock (every gate instance sees the same time): the same
# arithmetic as gate.store.gcra. ARGV holds interval_ms and burst per key. Returns per key
# {allowed, remaining, retry_ms, reset_ms}; when any key refuses, no key is written.
RATE_LIMIT = """
if redis.replicate_commands then redis.replicate_commands() end
local clock = redis.call('TIME')
local now = tonumber(clock[1]) * 1000 + math.floor(tonumber(clock[2]) / 1000)
local verdicts, new_tats, allowed = {}, {}, true
for i = 1, #KEYS do
    local interval = tonumber(ARGV[2 * i - 1])
    local tolerance = interval * tonumber(ARGV[2 * i])
    local tat = tonumber(redis.call('GET', KEYS[i])) or now
    if tat < now then tat = now end
    local new_tat = tat + interval
    local ahead = new_tat - now
    if ahead > tolerance then
        allowed = false
        verdicts[i] = {0, 0, ahead - tolerance, ahead - interval}
    else
        verdicts[i] = {1, math.floor((tolerance - ahead) / interval), 0, ahead}
    end
    new_tats[i] = new_tat
end
if allowed then
    for i = 1, #KEYS do
        redis.call('SET', KEYS[i], new_tats[i], 'PX', math.max(1, new_tats[i] - now))
    end
end
return verdicts
"""


def _with_default_timeouts(url: str) -> str:
    parts = urlsplit(url)
    query = dict(parse_qsl(parts.query))
    for name, value in DEFAULT_TIMEOUTS.items():
        query.setdefault(name, value)
    return urlunsplit(parts._replace(query=urlencode(query)))


class RedisStore:
    def __init__(self, client: Any) -> None:
        self._client = client
        self._incr = client.register_script(INCR_WITH_TTL)
        self._rate_limit = client.register_script(RATE_LIMIT)

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
            lambda: self._client.set(KEY_PREFIX + key, value, px=milliseconds(ttl), nx=only_if_absent)
        )
        return bool(done)

    async def incr(self, key: str, ttl: float, amount: int = 1) -> int:
        value = await self._call(lambda: self._incr(keys=[KEY_PREFIX + key], args=[milliseconds(ttl), amount]))
        return int(value)

    async def delete(self, key: str) -> bool:
        removed = await self._call(lambda: self._client.delete(KEY_PREFIX + key))
        return bool(removed)

    async def ttl(self, key: str) -> float | None:
        milliseconds = await self._call(lambda: self._client.pttl(KEY_PREFIX + key))
        return None if milliseconds < 0 else milliseconds / 1000

    async def rate_limit(self, quotas: Sequence[Quota]) -> list[Verdict]:
        if not quotas:
            return []
        arguments: list[int] = []
        for quota in quotas:
            arguments += [milliseconds(quota.interval), quota.burst]
        keys = [KEY_PREFIX + quota.key for quota in quotas]
        replies = await self._call(lambda: self._rate_limit(keys=keys, args=arguments))
        return [
            Verdict(bool(allowed), int(remaining), retry / 1000, reset / 1000)
            for allowed, remaining, retry, reset in replies
        ]

    async def ping(self) -> None:
        await self._call(lambda: self._client.ping())

    async def close(self) -> None:
        await self._client.aclose()
