"""A lean Redis client for one plain server (redis://, rediss://, unix://): one multiplexed connection per process.

Every command is written to the one connection as it comes and its future queued; replies arrive in the order
the commands were written (RESP), so each reply resolves the oldest waiting future. Any number of concurrent
commands share the connection: no pool, no locks, no task per command. Replies are parsed by hiredis.

When the connection drops, every command in flight fails with StoreUnavailable and the next command reconnects
(connect, AUTH, SELECT, within the connect deadline). Error replies become StoreError when the caller asked for
something wrong (CALLER_ERRORS) and StoreUnavailable otherwise, as for redis-py's client.

Every await on a command's path is on a plain future, so cancelling a caller is prompt: the future is cancelled,
stays queued, and its reply is dropped when it comes (the queue stays in step with the connection).
"""

from __future__ import annotations

import asyncio
import hashlib
import ssl
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, cast

import hiredis

from gate.store.base import StoreError, StoreUnavailable

Argument = bytes | str | int
# Replies that mean the caller asked for something wrong; every other refusal (OOM, MISCONF, LOADING, READONLY,
# MASTERDOWN, CLUSTERDOWN, TRYAGAIN, NOPERM, ...) means Redis cannot serve now, and a fallback may answer.
CALLER_ERRORS = ("WRONGTYPE", "value is not an integer")
MAX_IN_FLIGHT = 10_000  # commands waiting for a reply on the one connection; beyond, calls fail at once
NOT_ENOUGH_DATA = object()  # what hiredis.Reader.gets answers while a reply is still incomplete
CERT_REQUIREMENTS = {"none": ssl.CERT_NONE, "optional": ssl.CERT_OPTIONAL, "required": ssl.CERT_REQUIRED}


def refusal(message: str) -> StoreError:
    """The store error for an error reply: the caller's mistake, or Redis unable to serve now."""
    if any(sign in message for sign in CALLER_ERRORS):
        return StoreError(f"redis: {message}")
    return StoreUnavailable(f"redis: {message}")


def pack(arguments: tuple[Argument, ...]) -> bytes:
    """One command in RESP, by hiredis (in C)."""
    packed: bytes = hiredis.pack_command(arguments)  # type: ignore[arg-type]  # its stub types a tuple of one item
    return packed


def failure(reply: Exception) -> StoreError:
    """What a failed command raises: an error reply (hiredis.ReplyError), or the StoreUnavailable a dropped
    connection answered with."""
    return reply if isinstance(reply, StoreError) else refusal(str(reply))


@dataclass(frozen=True, slots=True)
class Script:
    """A Lua script called by its SHA1; sent in full only when the server does not have it yet (NOSCRIPT)."""

    body: str
    sha: str = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "sha", hashlib.sha1(self.body.encode(), usedforsecurity=False).hexdigest())


@dataclass(frozen=True, slots=True)
class Endpoint:
    """Where and how to connect: a TCP host and port (with TLS when `ssl` is set) or a unix socket path."""

    host: str = "localhost"
    port: int = 6379
    path: str | None = None
    ssl: ssl.SSLContext | None = None
    username: str | None = None
    password: str | None = None
    db: int = 0
    connect_timeout: float | None = None  # connecting, AUTH and SELECT together
    reply_timeout: float | None = None  # a connection whose oldest command waits this long is dropped


# URL options the lean client honours (as redis-py reads them); a URL with any other option keeps redis-py's client.
SSL_OPTIONS = frozenset({"ssl_cert_reqs", "ssl_ca_certs", "ssl_certfile", "ssl_keyfile", "ssl_check_hostname"})
KNOWN_OPTIONS = frozenset({"db", "socket_timeout", "socket_connect_timeout", "max_connections"}) | SSL_OPTIONS


def endpoint_from_url(url: str) -> Endpoint | None:
    """The endpoint of a plain redis://, rediss:// or unix:// URL, parsed as redis-py parses it; None for a URL
    with options only redis-py's client knows, or that it would refuse only when connecting (a unix URL without a
    path, a certificate file that cannot be read): redis-py's client then serves every call, as before."""
    from redis.asyncio.connection import parse_url

    options: dict[str, Any] = dict(parse_url(url))
    scheme = url.partition(":")[0]
    options.pop("connection_class", None)
    if not set(options) <= KNOWN_OPTIONS | {"host", "port", "path", "username", "password"}:
        return None
    if scheme == "unix" and not options.get("path"):
        return None
    context = None
    if scheme == "rediss":
        try:
            context = tls_context(options)
        except (ValueError, OSError):  # ssl.SSLError is an OSError
            return None
    elif set(options) & SSL_OPTIONS:
        return None
    return Endpoint(
        host=options.get("host", "localhost"),
        port=options.get("port", 6379),
        path=options.get("path"),
        ssl=context,
        username=options.get("username"),
        password=options.get("password"),
        db=options.get("db", 0),
        connect_timeout=options.get("socket_connect_timeout"),
        reply_timeout=options.get("socket_timeout"),
    )


def tls_context(options: dict[str, Any]) -> ssl.SSLContext:
    """The client context redis-py builds for rediss:// (certificates required, host names checked by default)."""
    requirement = options.get("ssl_cert_reqs", "required")
    if requirement not in CERT_REQUIREMENTS:
        raise ValueError(f"ssl_cert_reqs must be one of {', '.join(CERT_REQUIREMENTS)}, not {requirement!r}")
    context = ssl.create_default_context()
    context.check_hostname = options.get("ssl_check_hostname") is not False and requirement != "none"
    context.verify_mode = CERT_REQUIREMENTS[requirement]
    if options.get("ssl_certfile"):
        context.load_cert_chain(certfile=options["ssl_certfile"], keyfile=options.get("ssl_keyfile"))
    if options.get("ssl_ca_certs"):
        context.load_verify_locations(cafile=options["ssl_ca_certs"])
    return context


class Connection(asyncio.Protocol):
    """One connection: commands written in order, replies matched to a FIFO of futures."""

    def __init__(self, reply_timeout: float | None) -> None:
        self.loop = asyncio.get_running_loop()
        self.transport: asyncio.Transport | None = None
        self.waiting: deque[asyncio.Future[Any]] = deque()
        self.outgoing: list[bytes] = []  # commands sent during this turn of the event loop, written at its end
        self.reader = hiredis.Reader(notEnoughData=NOT_ENOUGH_DATA)
        self.lost = self.loop.create_future()
        self.reason = "connection closed"
        self.reply_timeout = reply_timeout
        self.watchdog: asyncio.TimerHandle | None = None
        self.oldest: asyncio.Future[Any] | None = None  # the oldest waiting command at the watchdog's last look

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's transports do not subclass asyncio's

    @property
    def open(self) -> bool:
        return self.transport is not None and not self.lost.done() and not self.transport.is_closing()

    def send(self, command: bytes) -> asyncio.Future[Any]:
        """Write one packed command; a future resolved with its reply, an error reply as a hiredis.ReplyError
        value, or a StoreUnavailable value when the connection drops first. Failures are values, not exceptions:
        a future nobody awaits any more then logs nothing."""
        if not self.open:
            raise StoreUnavailable(f"redis: {self.reason}")
        if len(self.waiting) >= MAX_IN_FLIGHT:
            raise StoreUnavailable(f"redis: {MAX_IN_FLIGHT} commands already wait for a reply")
        if not self.outgoing:
            self.loop.call_soon(self.write_out)
        self.outgoing.append(command)
        future = self.loop.create_future()
        self.waiting.append(future)
        if self.watchdog is None and self.reply_timeout is not None:
            self.oldest = future
            self.watchdog = self.loop.call_later(self.reply_timeout, self.watch)
        return future

    def send_all(self, commands: Sequence[bytes]) -> list[asyncio.Future[Any]]:
        """Several commands written one after the other without waiting (one round trip); a future for each
        reply, in order. All are written, or none."""
        if len(self.waiting) + len(commands) > MAX_IN_FLIGHT:
            raise StoreUnavailable(f"redis: {MAX_IN_FLIGHT} commands already wait for a reply")
        return [self.send(command) for command in commands]

    def write_out(self) -> None:
        """Write what the requests of one turn of the event loop sent in one system call rather than one each: under
        load many requests are handled per turn, so this pipelines their commands without making any of them wait
        longer than the turn."""
        commands, self.outgoing = self.outgoing, []
        if self.open:
            self.transport.writelines(commands)  # type: ignore[union-attr]  # open: connected
        # else connection_lost has answered, or will answer, every waiting future

    def data_received(self, data: bytes) -> None:
        reader, waiting = self.reader, self.waiting
        reader.feed(data)
        try:
            while (reply := reader.gets()) is not NOT_ENOUGH_DATA:
                future = waiting.popleft()
                if not future.done():  # a caller that stopped waiting (a deadline) cancelled its future
                    future.set_result(reply)
        except (hiredis.ProtocolError, IndexError) as error:  # garbage, or a reply nobody asked for
            self.drop(f"unreadable reply ({error or type(error).__name__})")

    def watch(self) -> None:
        """The backstop for a server that stops answering: the oldest command may wait reply_timeout at most
        (checked every reply_timeout, so it is dropped after between one and two)."""
        if not self.waiting:
            self.watchdog = None
            return
        if self.waiting[0] is self.oldest:
            self.watchdog = None
            self.drop(f"no reply within {self.reply_timeout:g} s")
            return
        self.oldest = self.waiting[0]
        assert self.reply_timeout is not None
        self.watchdog = self.loop.call_later(self.reply_timeout, self.watch)

    def drop(self, reason: str) -> None:
        self.reason = reason
        if self.transport is not None:
            self.transport.abort()

    def connection_lost(self, exc: Exception | None) -> None:
        if exc is not None and self.reason == "connection closed":
            self.reason = f"connection lost ({exc or type(exc).__name__})"
        if self.watchdog is not None:
            self.watchdog.cancel()
            self.watchdog = None
        while self.waiting:
            future = self.waiting.popleft()
            if not future.done():
                future.set_result(StoreUnavailable(f"redis: {self.reason}"))
        if not self.lost.done():
            self.lost.set_result(None)


class RespClient:
    """Commands to one Redis server over one connection, opened on first use and again after it drops."""

    def __init__(self, endpoint: Endpoint) -> None:
        self.endpoint = endpoint
        self._connection: Connection | None = None
        self._connecting: asyncio.Task[Connection] | None = None
        self._closed = False

    async def execute(self, *arguments: Argument) -> Any:
        """The command's reply (bytes, int, None or a list of them); StoreError when Redis refuses it."""
        connection = self._open_connection() or await self._connect()
        reply = await connection.send(pack(arguments))
        if isinstance(reply, Exception):
            raise failure(reply)
        return reply

    async def evalsha(self, script: Script, keys: Sequence[Argument], arguments: Sequence[Argument]) -> Any:
        """Run a script by its SHA; when the server does not know it (a restart, SCRIPT FLUSH), load it and run it
        again, both in one round trip."""
        command = (b"EVALSHA", script.sha, len(keys), *keys, *arguments)
        try:
            return await self.execute(*command)
        except StoreUnavailable as error:
            if not str(error).startswith("redis: NOSCRIPT"):
                raise
        connection = self._open_connection() or await self._connect()
        loaded, reply = connection.send_all([pack((b"SCRIPT", b"LOAD", script.body)), pack(command)])
        for answer in (await loaded, await reply):
            if isinstance(answer, Exception):
                raise failure(answer)
        return reply.result()

    def _open_connection(self) -> Connection | None:
        connection = self._connection
        return connection if connection is not None and connection.open else None

    async def _connect(self) -> Connection:
        """The open connection; every caller arriving while it is being opened waits for the same attempt."""
        if self._closed:
            raise StoreUnavailable("redis: client closed")
        if self._connecting is None:
            self._connecting = asyncio.ensure_future(self._open())
            self._connecting.add_done_callback(self._opened)
        return await asyncio.shield(self._connecting)  # a caller's deadline must not abandon the attempt

    def _opened(self, attempt: asyncio.Task[Connection]) -> None:
        self._connecting = None
        if not attempt.cancelled() and attempt.exception() is None:  # retrieved, even when nobody waits any more
            self._connection = attempt.result()

    async def _open(self) -> Connection:
        endpoint, loop = self.endpoint, asyncio.get_running_loop()
        connection: Connection | None = None
        try:
            async with asyncio.timeout(endpoint.connect_timeout):
                if endpoint.path is not None:
                    _, connection = await loop.create_unix_connection(
                        lambda: Connection(endpoint.reply_timeout), endpoint.path
                    )
                else:
                    _, connection = await loop.create_connection(
                        lambda: Connection(endpoint.reply_timeout), endpoint.host, endpoint.port, ssl=endpoint.ssl
                    )
                setup = []
                if endpoint.password is not None:
                    user = () if endpoint.username is None else (endpoint.username,)
                    setup.append(pack((b"AUTH", *user, endpoint.password)))
                if endpoint.db:
                    setup.append(pack((b"SELECT", endpoint.db)))
                for future in connection.send_all(setup):
                    reply = await future
                    if isinstance(reply, Exception):
                        raise StoreUnavailable(str(failure(reply)))
        except TimeoutError:
            await _abort(connection)
            raise StoreUnavailable(f"redis: no connection within {endpoint.connect_timeout:g} s") from None
        except (OSError, ssl.SSLError) as error:
            await _abort(connection)
            raise StoreUnavailable(f"redis: cannot connect ({error or type(error).__name__})") from error
        except BaseException:
            await _abort(connection)
            raise
        if self._closed:  # closed while connecting
            await _abort(connection)
            raise StoreUnavailable("redis: client closed")
        return connection

    async def close(self) -> None:
        self._closed = True
        if self._connecting is not None:
            self._connecting.cancel()
            await asyncio.wait({self._connecting})
        connection, self._connection = self._connection, None
        if connection is not None and connection.transport is not None:
            connection.transport.close()
            await asyncio.wait({connection.lost}, timeout=1.0)


async def _abort(connection: Connection | None) -> None:
    if connection is not None and connection.transport is not None:
        connection.transport.abort()
        await connection.lost
