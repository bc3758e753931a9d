"""The shared store: Redis (or Redis Cluster, or a primary found by Sentinel), scripts loaded once.

A plain server (redis://, rediss://, unix://) is reached for the request path's calls (get, set, incr, delete, ttl,
rate_limit, ping) through gate's own multiplexed client (gate/store/resp.py): one connection, no pool. The rest
(scan, hashes of counters) and every call to a Cluster or through Sentinel go through redis-py's client.

Keys are prefixed with `gate:` so gate can share a Redis with other users; every write sets an expiry.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any, TypeVar
from urllib.parse import parse_qsl, unquote, urlencode, urlsplit, urlunsplit

import redis.asyncio as aioredis
from redis.exceptions import RedisClusterException, RedisError, ResponseError

from gate.store.base import Quota, StoreUnavailable, Verdict, Verdicts
from gate.store.gcra import milliseconds
from gate.store.resp import Argument, RespClient, Script, endpoint_from_url, refusal

T = TypeVar("T")
Item = TypeVar("Item")
Result = TypeVar("Result")

KEY_PREFIX = "gate:"
# Socket timeouts are a backstop (FallbackStore's deadline is much shorter). Every concurrent command on redis-py's
# client needs a connection of its own: the pool must hold as many as a worker has requests in flight.
DEFAULT_OPTIONS = {"socket_timeout": "0.5", "socket_connect_timeout": "0.5", "max_connections": "1024"}

# INCRBY and set the expiry only when the counter is new: one atomic round trip, for each key (ARGV holds ttl_ms and
# amount per key); the new values, in order.
INCR_WITH_TTL = Script("""
local values = {}
for i = 1, #KEYS do
    values[i] = redis.call('INCRBY', KEYS[i], ARGV[2 * i])
    if redis.call('PTTL', KEYS[i]) < 0 then
        redis.call('PEXPIRE', KEYS[i], ARGV[2 * i - 1])
    end
end
return values
""")


# GCRA over several keys, atomically, on the server's clock (every gate instance sees the same time): the same
# arithmetic as gate.store.gcra. ARGV[1] is 1 when KEYS[1] is the client's ban key; then ARGV holds interval_ms and
# burst per quota key. Returns {banned_ms, verdict...} with a verdict {allowed, remaining, retry_ms, reset_ms} per
# quota; a ban (banned_ms > 0) or any refusal writes nothing.
RATE_LIMIT = Script("""
if redis.replicate_commands then redis.replicate_commands() end
local first = 1
if ARGV[1] == '1' then
    local banned = redis.call('PTTL', KEYS[1])
    if banned > 0 then return {banned} end
    first = 2
end
local clock = redis.call('TIME')
local now = tonumber(clock[1]) * 1000 + math.floor(tonumber(clock[2]) / 1000)
local reply, new_tats, allowed = {0}, {}, true
for i = first, #KEYS do
    local q = i - first + 1
    local interval = tonumber(ARGV[2 * q])
    local tolerance = interval * tonumber(ARGV[2 * q + 1])
    local tat = tonumber(redis.call('GET', KEYS[i])) or now
    if tat < now then tat = now end
    local new_tat = tat + interval
    local ahead = new_tat - now
    if ahead > tolerance then
        allowed = false
        reply[q + 1] = {0, 0, ahead - tolerance, ahead - interval}
    else
        reply[q + 1] = {1, math.floor((tolerance - ahead) / interval), 0, ahead}
    end
    new_tats[i] = new_tat
end
if allowed then
    for i = first, #KEYS do
        redis.call('SET', KEYS[i], new_tats[i], 'PX', math.max(1, new_tats[i] - now))
    end
end
return reply
""")
# Requests already let through (gate/local_quotas.py), added to their quotas without refusing any: ARGV[1] is the
# number of quota keys, then interval_ms and count per quota key; the keys after them are ban keys. Returns, per
# quota key, the TAT's distance from now, then per ban key its milliseconds left (0 when absent).
ADD_CHARGES = Script("""
if redis.replicate_commands then redis.replicate_commands() end
local clock = redis.call('TIME')
local now = tonumber(clock[1]) * 1000 + math.floor(tonumber(clock[2]) / 1000)
local quotas = tonumber(ARGV[1])
local reply = {}
for i = 1, quotas do
    local tat = tonumber(redis.call('GET', KEYS[i])) or now
    if tat < now then tat = now end
    tat = tat + tonumber(ARGV[2 * i]) * tonumber(ARGV[2 * i + 1])
    redis.call('SET', KEYS[i], tat, 'PX', math.max(1, tat - now))
    reply[i] = tat - now
end
for i = quotas + 1, #KEYS do
    local left = redis.call('PTTL', KEYS[i])
    if left < 0 then left = 0 end
    reply[i] = left
end
return reply
""")
SCAN_BATCH = 1000
UNCHARGED = Verdict(True, 0, 0.0, 0.0)  # a quota in a slot never charged because another refused first
GLOB_SPECIAL = re.compile(r"[\\*?\[\]]")


def _with_default_options(url: str) -> str:
    parts = urlsplit(url)
    query = dict(parse_qsl(parts.query))
    for name, value in DEFAULT_OPTIONS.items():
        query.setdefault(name, value)
    return urlunsplit(parts._replace(query=urlencode(query)))


def sentinel_client(url: str) -> tuple[Any, list[Any]]:
    """redis+sentinel://[[USER]:PASSWORD@]HOST:PORT[,HOST:PORT...]/SERVICE[/DB][?sentinel_password=…]: the primary
    the sentinels name, found again by asking them after every failover. The credentials are the primary's
    (percent-decoded); `sentinel_password` is the sentinels' own when they require one. Returns the client and the
    sentinels' own clients (to close)."""
    parts = urlsplit(url)
    credentials, _, hosts = parts.netloc.rpartition("@")
    user, _, password = credentials.partition(":") if credentials else ("", "", "")
    sentinels = []
    for address in hosts.split(","):
        host, _, port = address.rpartition(":")
        if not host or not port.isdigit():
            raise ValueError(f"{url!r}: expected sentinels as HOST:PORT[,HOST:PORT...]")
        sentinels.append((host.strip("[]"), int(port)))
    service, _, db = parts.path.strip("/").partition("/")
    if not service:
        raise ValueError(f"{url!r}: name the monitored service, like redis+sentinel://HOST:PORT/mymaster")
    options = dict(parse_qsl(parts.query))
    settings: dict[str, Any] = {name: float(options.get(name, value)) for name, value in DEFAULT_OPTIONS.items()}
    settings["max_connections"] = int(settings["max_connections"])
    sentinel_settings = {"socket_timeout": settings["socket_timeout"], "password": options.get("sentinel_password")}
    sentinel = aioredis.Sentinel(sentinels, sentinel_kwargs=sentinel_settings)  # type: ignore[no-untyped-call]
    client = sentinel.master_for(
        service, db=int(db or 0), username=unquote(user) or None, password=unquote(password) or None, **settings
    )
    return client, list(sentinel.sentinels)


class RedisStore:
    # The operations that go through the lean client when there is one: every await on their way is on a plain
    # future, so a deadline (FallbackStore) may cancel them directly.
    LEAN_OPERATIONS = frozenset(
        {"get", "set", "incr", "incr_many", "delete", "ttl", "rate_limit", "add_charges", "ping"}
    )

    def __init__(self, client: Any, sentinels: Sequence[Any] = (), lean: RespClient | None = None) -> None:
        self._client = client
        self._sentinels = sentinels
        self._lean = lean
        self._cluster = isinstance(client, aioredis.RedisCluster)
        self._started = not self._cluster
        self._starting = asyncio.Lock()
        self._scripts = {
            script: client.register_script(script.body) for script in (INCR_WITH_TTL, RATE_LIMIT, ADD_CHARGES)
        }
        self.prompt_operations = self.LEAN_OPERATIONS if lean is not None else frozenset()

    @classmethod
    def from_url(cls, url: str) -> RedisStore:
        scheme = urlsplit(url).scheme
        if scheme == "redis+sentinel":
            return cls(*sentinel_client(url))
        url = _with_default_options(url)
        if scheme in ("redis+cluster", "rediss+cluster"):
            plain = scheme.removesuffix("+cluster") + url[len(scheme) :]
            return cls(aioredis.RedisCluster.from_url(plain))
        endpoint = endpoint_from_url(url)
        return cls(aioredis.Redis.from_url(url), lean=RespClient(endpoint) if endpoint is not None else None)

    async def _call(self, operation: Callable[[], Awaitable[T]]) -> T:
        try:
            if not self._started:
                await self._start_cluster()
            return await operation()
        except ResponseError as error:
            raise refusal(str(error)) from error
        except (RedisError, RedisClusterException, OSError) as error:
            raise StoreUnavailable(f"redis: {error or type(error).__name__}") from error

    async def _command(self, *arguments: Argument) -> Any:
        """One command's reply, from the lean client when there is one."""
        if self._lean is not None:
            return await self._lean.execute(*arguments)
        return await self._client.execute_command(*arguments)

    async def _run(self, script: Script, keys: Sequence[Argument], arguments: Sequence[Argument]) -> Any:
        """A script's reply (by SHA, loaded again when Redis lost it), from the lean client when there is one."""
        if self._lean is not None:
            return await self._lean.evalsha(script, keys, arguments)
        return await self._scripts[script](keys=keys, args=arguments)

    async def _start_cluster(self) -> None:
        """Learn the cluster's slots once, before any command: redis-py's RedisCluster (8.1) sends some commands
        twice when many arrive before it has (50 concurrent INCRs counted 52)."""
        async with self._starting:
            if not self._started:
                await self._client.initialize()
                self._started = True

    async def get(self, key: str) -> bytes | None:
        value: bytes | None = await self._call(lambda: self._command("GET", KEY_PREFIX + key))
        return value

    async def set(self, key: str, value: bytes, ttl: float, *, only_if_absent: bool = False) -> bool:
        command = ("SET", KEY_PREFIX + key, value, "PX", milliseconds(ttl), *(("NX",) if only_if_absent else ()))
        done = await self._call(lambda: self._command(*command))
        return bool(done)  # OK (or True from redis-py), None when NX found the key

    async def incr(self, key: str, ttl: float, amount: int = 1) -> int:
        [value] = await self._call(lambda: self._incr([(key, amount, ttl)]))
        return value

    async def incr_many(self, counts: Sequence[tuple[str, int, float]]) -> list[int]:
        return await self._call(lambda: self._per_slot(counts, lambda count: count[0], self._incr))

    async def _incr(self, counts: Sequence[tuple[str, int, float]]) -> list[int]:
        arguments: list[int] = []
        for _, amount, ttl in counts:
            arguments += [milliseconds(ttl), amount]
        values = await self._run(INCR_WITH_TTL, [KEY_PREFIX + key for key, _, _ in counts], arguments)
        return [int(value) for value in values]

    async def delete(self, key: str) -> bool:
        removed = await self._call(lambda: self._command("DEL", KEY_PREFIX + key))
        return bool(removed)

    async def ttl(self, key: str) -> float | None:
        left = int(await self._call(lambda: self._command("PTTL", KEY_PREFIX + key)))
        return None if left < 0 else left / 1000

    async def rate_limit(self, quotas: Sequence[Quota], ban_key: str | None = None) -> Verdicts:
        if not self._cluster:
            return await self._call(lambda: self._charge(quotas, ban_key))
        return await self._call(lambda: self._charge_cluster(quotas, ban_key))

    async def _charge_cluster(self, quotas: Sequence[Quota], ban_key: str | None) -> Verdicts:
        """A script runs on one slot. The first slot (the ban key's, which the client's own quotas share) is
        charged first; only when it neither bans nor refuses are the other slots charged, all at once. So a banned
        or refused client charges nothing, at the cost of a second round trip for requests with per-agent or
        per-site quotas."""
        slots: dict[int, list[Quota]] = {}
        if ban_key is not None:
            slots[self._client.keyslot(KEY_PREFIX + ban_key)] = []
        for quota in quotas:
            slots.setdefault(self._client.keyslot(KEY_PREFIX + quota.key), []).append(quota)
        groups = list(slots.values())
        if not groups:
            return Verdicts([])
        first = await self._charge(groups[0], ban_key)
        if first.banned_for > 0:
            return first
        if not all(verdict.allowed for verdict in first.each):
            refused = dict(zip(map(id, groups[0]), first.each, strict=True))
            return Verdicts([refused.get(id(quota), UNCHARGED) for quota in quotas])
        answers = [first, *await asyncio.gather(*(self._charge(group, None) for group in groups[1:]))]
        by_quota = {
            id(quota): verdict
            for group, answer in zip(groups, answers, strict=True)
            for quota, verdict in zip(group, answer.each, strict=True)
        }
        return Verdicts([by_quota[id(quota)] for quota in quotas])

    async def _charge(self, quotas: Sequence[Quota], ban_key: str | None) -> Verdicts:
        keys = [KEY_PREFIX + ban_key] if ban_key is not None else []
        arguments: list[int] = [1 if ban_key is not None else 0]
        for quota in quotas:
            keys.append(KEY_PREFIX + quota.key)
            arguments += [milliseconds(quota.interval), quota.burst]
        banned_ms, *replies = await self._run(RATE_LIMIT, keys, arguments)
        if banned_ms > 0:
            return Verdicts([], banned_ms / 1000)
        return Verdicts(
            [
                Verdict(bool(allowed), int(remaining), retry / 1000, reset / 1000)
                for allowed, remaining, retry, reset in replies
            ]
        )

    async def add_charges(
        self, charges: Sequence[tuple[Quota, int]], ban_keys: Sequence[str] = ()
    ) -> tuple[list[float], list[float]]:
        items: list[tuple[Quota, int] | str] = [*charges, *ban_keys]
        seconds = await self._call(lambda: self._per_slot(items, _item_key, self._add))
        return seconds[: len(charges)], seconds[len(charges) :]

    async def _add(self, items: Sequence[tuple[Quota, int] | str]) -> list[float]:
        """One slot's charges, then its ban keys (add_charges lists them in that order), in one script: seconds
        until each quota is full again, then each ban's time left."""
        charges = [item for item in items if not isinstance(item, str)]
        keys = [KEY_PREFIX + _item_key(item) for item in items]
        arguments = [len(charges)]
        for quota, count in charges:
            arguments += [milliseconds(quota.interval), count]
        return [ms / 1000 for ms in await self._run(ADD_CHARGES, keys, arguments)]

    async def _per_slot(
        self,
        items: Sequence[Item],
        key_of: Callable[[Item], str],
        run: Callable[[list[Item]], Awaitable[list[Result]]],
    ) -> list[Result]:
        """run() over the items of each cluster slot, all slots at once (one call in all on a single server); the
        results in the items' order."""
        slots: dict[int, list[int]] = {}
        for index, item in enumerate(items):
            slot = int(self._client.keyslot(KEY_PREFIX + key_of(item))) if self._cluster else 0
            slots.setdefault(slot, []).append(index)
        answers = await asyncio.gather(*(run([items[index] for index in indexes]) for indexes in slots.values()))
        results: dict[int, Result] = {}
        for indexes, answer in zip(slots.values(), answers, strict=True):
            results.update(zip(indexes, answer, strict=True))
        return [results[index] for index in range(len(items))]

    async def scan(self, prefix: str, limit: int) -> list[tuple[str, bytes, float]]:
        async def collect() -> list[tuple[str, bytes, float]]:
            pattern = GLOB_SPECIAL.sub(r"\\\g<0>", KEY_PREFIX + prefix) + "*"
            names: list[bytes] = []
            async for name in self._client.scan_iter(match=pattern, count=SCAN_BATCH):
                names.append(name)
                if len(names) >= limit:
                    break
            if self._cluster:  # one key at a time: each may live on another node
                values = [(await self._client.get(name), await self._client.pttl(name)) for name in names]
            else:
                async with self._client.pipeline(transaction=False) as pipe:
                    for name in names:
                        pipe.get(name).pttl(name)
                    replies = await pipe.execute()
                values = list(zip(replies[::2], replies[1::2], strict=True))
            return [
                (name.decode()[len(KEY_PREFIX) :], value, left / 1000)
                for name, (value, left) in zip(names, values, strict=True)
                if value is not None and left > 0
            ]

        return await self._call(collect)

    async def add_counts(self, key: str, counts: Mapping[str, int], ttl: float) -> None:
        async def add() -> None:
            async with self._client.pipeline(transaction=False) as pipe:
                for name, amount in counts.items():
                    pipe.hincrby(KEY_PREFIX + key, name, amount)
                pipe.pexpire(KEY_PREFIX + key, milliseconds(ttl))
                await pipe.execute()

        await self._call(add)

    async def get_counts(self, keys: Sequence[str]) -> list[dict[str, int]]:
        async def read() -> list[dict[str, int]]:
            async with self._client.pipeline(transaction=False) as pipe:
                for key in keys:
                    pipe.hgetall(KEY_PREFIX + key)
                replies = await pipe.execute()
            return [{name.decode(): int(value) for name, value in reply.items()} for reply in replies]

        return await self._call(read)

    async def ping(self) -> None:
        await self._call(lambda: self._command("PING"))

    async def close(self) -> None:
        if self._lean is not None:
            await self._lean.close()
        await self._client.aclose()
        for sentinel in self._sentinels:
            await sentinel.aclose()


def _item_key(item: tuple[Quota, int] | str) -> str:
    """The key of an add_charges item: a quota's, or a ban key itself."""
    return item if isinstance(item, str) else item[0].key
