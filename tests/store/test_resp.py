"""gate's own Redis client (gate/store/resp.py): one multiplexed connection, replies matched in order, reconnects
after a drop, AUTH, SELECT, scripts loaded again after a flush, TLS and unix sockets. The store conformance suite
(test_store.py, test_rate_limit.py, test_fallback.py) runs RedisStore over it for every plain redis:// URL."""

from __future__ import annotations

import asyncio
import concurrent.futures
import time
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path

import pytest
import redis.asyncio as aioredis
import uvloop

from gate.store import FallbackStore, Quota, RedisStore, StoreError, StoreUnavailable, resp
from gate.store.redis import KEY_PREFIX, RATE_LIMIT
from gate.store.resp import Endpoint, RespClient, endpoint_from_url
from tests.support.ports import free_port, stop
from tests.support.redis_server import start_redis_server
from tests.support.tls import self_signed_certificate


@pytest.fixture
async def client(redis_url: str) -> AsyncIterator[RespClient]:
    endpoint = endpoint_from_url(redis_url)
    assert endpoint is not None
    opened = RespClient(endpoint)
    try:
        yield opened
    finally:
        await opened.close()


@pytest.fixture
def private_redis(tmp_path: Path) -> Iterator[Callable[..., str]]:
    """Starts redis-servers with extra options on free ports; their URLs (without a password) are returned."""
    processes = []

    def start(*options: str) -> str:
        port = free_port()
        processes.append(start_redis_server(tmp_path, port, *options))
        return f"127.0.0.1:{port}"

    try:
        yield start
    finally:
        for process in processes:
            stop(process)


async def test_many_concurrent_commands_share_one_connection_and_get_their_own_replies(client: RespClient) -> None:
    first_id = await client.execute("CLIENT", "ID")
    commands = [("ECHO", f"reply-{n}") if n % 10 else ("CLIENT", "ID") for n in range(2000)]
    replies = await asyncio.gather(*(client.execute(*command) for command in commands))
    for (name, argument), reply in zip(commands, replies, strict=True):
        assert reply == (argument.encode() if name == "ECHO" else first_id)


async def test_replies_with_nested_arrays_and_nil_come_back_as_lists(client: RespClient) -> None:
    reply = await client.execute("EVAL", "return {1, {2, {3, false}}, 'x'}", 0)
    assert reply == [1, [2, [3, None]], b"x"]


async def test_a_killed_connection_fails_the_calls_in_flight_and_the_next_call_reconnects(
    client: RespClient, raw_redis: aioredis.Redis, key: Callable[[str], str]
) -> None:
    before = await client.execute("CLIENT", "ID")
    blocked = asyncio.ensure_future(client.execute("BLPOP", key("never"), 5))
    queued = [asyncio.ensure_future(client.execute("PING")) for _ in range(10)]  # behind the blocked command
    await asyncio.sleep(0.05)
    assert await raw_redis.client_kill_filter(_id=before) == 1
    started = time.monotonic()
    for call in [blocked, *queued]:
        with pytest.raises(StoreUnavailable):
            await call
    assert time.monotonic() - started < 1
    after = await client.execute("CLIENT", "ID")
    assert after != before


async def test_a_restarted_server_is_reconnected_to(tmp_path: Path) -> None:
    port = free_port()
    process = start_redis_server(tmp_path, port)
    client = RespClient(Endpoint(port=port, host="127.0.0.1", connect_timeout=0.5))
    try:
        assert await client.execute("SET", "k", "v") == b"OK"
        stop(process)
        with pytest.raises(StoreUnavailable):
            await client.execute("GET", "k")
        with pytest.raises(StoreUnavailable):  # nothing listens: the reconnection fails too
            await client.execute("GET", "k")
        process = start_redis_server(tmp_path, port)
        assert await client.execute("GET", "k") is None  # a new, empty server
    finally:
        await client.close()
        stop(process)


async def test_a_silent_server_is_dropped_after_the_reply_timeout() -> None:
    async def hold(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read()
        writer.close()

    server = await asyncio.start_server(hold, "127.0.0.1", 0)
    client = RespClient(Endpoint(host="127.0.0.1", port=server.sockets[0].getsockname()[1], reply_timeout=0.1))
    try:
        started = time.monotonic()
        with pytest.raises(StoreUnavailable, match="no reply within"):
            await client.execute("PING")
        assert 0.1 <= time.monotonic() - started < 0.5
    finally:
        await client.close()
        server.close()
        await server.wait_closed()


async def test_calls_beyond_the_in_flight_bound_fail_at_once(
    client: RespClient, key: Callable[[str], str], monkeypatch: pytest.MonkeyPatch
) -> None:
    await client.execute("PING")
    monkeypatch.setattr(resp, "MAX_IN_FLIGHT", 3)
    waiting = [asyncio.ensure_future(client.execute("BLPOP", key("never"), 1)) for _ in range(3)]
    await asyncio.sleep(0)
    with pytest.raises(StoreUnavailable, match="already wait"):
        await client.execute("PING")
    monkeypatch.undo()
    assert await asyncio.gather(*waiting) == [None, None, None]  # BLPOP timed out: the connection still works
    assert await client.execute("PING") == b"PONG"


async def test_error_replies_split_into_the_callers_mistakes_and_unavailability(
    client: RespClient, key: Callable[[str], str]
) -> None:
    await client.execute("SET", key("text"), "not a number")
    with pytest.raises(StoreError) as refused:
        await client.execute("INCR", key("text"))
    assert not isinstance(refused.value, StoreUnavailable)
    with pytest.raises(StoreUnavailable):
        await client.execute("NO-SUCH-COMMAND")
    assert await client.execute("PING") == b"PONG"  # an error reply keeps the connection in step


async def test_a_flushed_script_is_loaded_again(
    redis_url: str, raw_redis: aioredis.Redis, key: Callable[[str], str]
) -> None:
    store = RedisStore.from_url(redis_url)
    quota = Quota(key("rl"), interval=60.0, burst=5)
    try:
        assert await store.incr(key("hits"), 60) == 1
        assert (await store.rate_limit([quota])).each[0].remaining == 4
        await raw_redis.script_flush()
        assert await store.incr(key("hits"), 60) == 2
        await raw_redis.script_flush()
        assert (await store.rate_limit([quota])).each[0].remaining == 3
        assert await raw_redis.script_exists(RATE_LIMIT.sha) == [True]  # loaded for the next call
    finally:
        await store.close()


async def test_auth_with_a_user_and_a_percent_encoded_password(private_redis: Callable[..., str]) -> None:
    address = private_redis(
        "--requirepass", "default-secret", "--user", "alice", "on", ">p@ss:w/rd", "~*", "&*", "+@all"
    )
    for url in (f"redis://alice:p%40ss%3Aw%2Frd@{address}/0", f"redis://:default-secret@{address}/0"):
        store = RedisStore.from_url(url)
        try:
            assert await store.set("k", b"v", 60)
            assert await store.get("k") == b"v"
        finally:
            await store.close()
    for url in (f"redis://alice:wrong@{address}/0", f"redis://{address}/0"):
        store = RedisStore.from_url(url)
        try:
            with pytest.raises(StoreUnavailable):
                await store.get("k")
        finally:
            await store.close()


async def test_the_database_in_the_url_is_selected(
    redis_url: str, raw_redis: aioredis.Redis, key: Callable[[str], str]
) -> None:
    store = RedisStore.from_url(redis_url.rpartition("/")[0] + "/3")
    other = aioredis.Redis.from_url(redis_url.rpartition("/")[0] + "/3")
    try:
        await store.set(key("k"), b"in three", 60)
        assert await other.get(KEY_PREFIX + key("k")) == b"in three"
        assert await raw_redis.get(KEY_PREFIX + key("k")) is None
    finally:
        await store.close()
        await other.aclose()


async def test_a_unix_socket(private_redis: Callable[..., str], tmp_path: Path) -> None:
    socket = tmp_path / "redis.sock"
    private_redis("--unixsocket", str(socket))
    store = FallbackStore(RedisStore.from_url(f"unix://{socket}?db=2"), 1.0)
    try:
        assert await store.incr("hits", 60) == 1
        assert not (await store.rate_limit([Quota("rl", 1.0, 5)])).fallback
    finally:
        await store.close()


async def test_tls(private_redis: Callable[..., str], tmp_path: Path) -> None:
    certificate = self_signed_certificate(tmp_path)
    port = free_port()
    try:
        address = private_redis(
            *("--tls-port", str(port), "--tls-cert-file", str(certificate.cert), "--tls-key-file"),
            *(str(certificate.key), "--tls-ca-cert-file", str(certificate.cert), "--tls-auth-clients", "no"),
        )
    except RuntimeError as error:  # a redis-server built without TLS
        pytest.skip(f"redis-server cannot serve TLS: {error}")
    assert address
    store = RedisStore.from_url(f"rediss://127.0.0.1:{port}/0?ssl_ca_certs={certificate.cert}")
    try:
        assert await store.set("k", b"over tls", 60)
        assert await store.get("k") == b"over tls"
    finally:
        await store.close()
    untrusted = RedisStore.from_url(f"rediss://127.0.0.1:{port}/0")  # the self-signed certificate is not trusted
    try:
        with pytest.raises(StoreUnavailable):
            await untrusted.ping()
    finally:
        await untrusted.close()


def test_under_uvloop_as_gate_runs(redis_url: str) -> None:
    """gate's workers run uvloop, whose transports are not asyncio's: the same calls, in a uvloop of their own."""

    async def scenario() -> None:
        shared = RedisStore.from_url(redis_url)
        store = FallbackStore(shared, 1.0)
        raw = aioredis.Redis.from_url(redis_url)
        try:
            await store.ping()
            connection = await shared._command("CLIENT", "ID")
            quota = Quota("{uvloop}rl", interval=0.001, burst=1000)
            answers = await asyncio.gather(*(store.rate_limit([quota]) for _ in range(200)))
            assert not any(answer.fallback for answer in answers)
            assert await raw.client_kill_filter(_id=connection) == 1
            await asyncio.sleep(0.05)
            assert await store.set("{uvloop}k", b"v", 60)
            assert await shared.get("{uvloop}k") == b"v"  # in Redis: reconnected
            assert await shared._command("CLIENT", "ID") != connection
        finally:
            await store.close()
            await raw.aclose()

    with concurrent.futures.ThreadPoolExecutor(1) as thread:
        thread.submit(uvloop.run, scenario()).result(timeout=30)


def test_only_plain_urls_with_known_options_get_the_lean_client() -> None:
    assert endpoint_from_url("redis://h:1/2?socket_timeout=0.2") == Endpoint(host="h", port=1, db=2, reply_timeout=0.2)
    endpoint = endpoint_from_url("redis://us%40er:p%3Ass@h/0")
    assert endpoint is not None and (endpoint.username, endpoint.password) == ("us@er", "p:ss")
    assert endpoint_from_url("unix:///run/redis.sock?db=1") == Endpoint(path="/run/redis.sock", db=1)
    assert endpoint_from_url("redis://h/0?health_check_interval=5") is None  # redis-py's client serves it all
    assert endpoint_from_url("rediss://h/0?ssl_ca_certs=/nonexistent") is None  # redis-py fails it as before
    assert endpoint_from_url("redis://h/0?ssl_cert_reqs=none") is None  # TLS options without TLS: as before
    store = RedisStore.from_url("redis://h/0?health_check_interval=5")
    assert store.prompt_operations == frozenset()
