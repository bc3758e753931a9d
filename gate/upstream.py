"""gate's HTTP/1.1 client for its one upstream: pooled keep-alive connections on asyncio Protocols, responses parsed
by httptools, bodies streamed both ways with flow control.

It replaces aiohttp on the forwarding path because aiohttp's general-purpose client machinery (request and response
objects, multidicts, stream writers, connector bookkeeping) was over a third of a gate worker's CPU for a small page;
this client does only what forwarding to one origin needs (see docs/benchmarks.md).
"""

from __future__ import annotations

import asyncio
import ssl
from collections import deque
from collections.abc import Awaitable, Callable
from functools import partial
from typing import ClassVar, cast
from urllib.parse import urlsplit

import httptools

from gate.config import Upstream

MAX_UPSTREAM_HEADER_BYTES = 65536
IDLE_SECONDS = 15.0  # nginx keeps idle connections 75 s by default, so gate closes first and rarely meets a stale one
MAX_IDLE = 256
LAST_CHUNK = b"0\r\n\r\n"
REPLAYABLE = frozenset({"GET", "HEAD", "OPTIONS", "TRACE"})

# The next piece of a request body and whether more follows; it may raise to abandon the request.
BodySource = Callable[[], Awaitable[tuple[bytes, bool]]]


class UpstreamError(Exception):
    """The upstream failed before its response head: gate answers `status` itself and counts the failure as `kind`."""

    status: ClassVar[int] = 502
    kind: ClassVar[str] = "protocol"


class UpstreamConnectError(UpstreamError):
    kind: ClassVar[str] = "connect"


class UpstreamTimeout(UpstreamError):
    status: ClassVar[int] = 504
    kind: ClassVar[str] = "timeout"


class StaleConnection(UpstreamError):
    """The connection ended before a single byte of the response: on a pooled connection, the upstream had closed it
    while idle, and the request may be sent again on a fresh one."""


class UpstreamBodyError(UpstreamError):
    """The upstream failed in the middle of a body: the response must reach the client incomplete."""

    kind: ClassVar[str] = "aborted"


def request_head(method: str, target: str, headers: list[tuple[bytes, bytes]]) -> bytes:
    """A request head in bytes, headers as given (no decoding, no case changes)."""
    lines = [f"{method} {target} HTTP/1.1".encode("ascii")]
    lines += [name + b": " + value for name, value in headers]
    lines += [b"", b""]
    return b"\r\n".join(lines)


class UpstreamConnection(asyncio.Protocol):
    """One connection, one exchange at a time: parses the response with httptools and holds the body bytes the
    consumer has not taken yet; reading pauses while it holds any, so a slow client never makes gate buffer."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.transport: asyncio.Transport | None = None
        self.parser = httptools.HttpResponseParser(self)
        self.lost = False
        self.idle_since = 0.0
        self._waiter: asyncio.Future[None] | None = None
        self._drain: asyncio.Future[None] | None = None
        self._writing_paused = False
        self._reading_paused = False
        self._new_parser = False
        self.active = False
        self._reset_exchange(False)

    def _reset_exchange(self, skip_body: bool) -> None:
        self.skip_body = skip_body  # a HEAD request: the response has no body whatever its headers say
        self.status = 0
        self.headers: list[tuple[bytes, bytes]] = []
        self.head_size = 0  # header bytes (exact, from the parser)
        self.raw_head = 0  # bytes fed before the head completed (bounds what the parser buffers)
        self.body_bytes = 0
        self.framing = 0  # bytes after the head that were not body since the last chunk began (trailers included)
        self.head_done = False
        self.interim = False
        self.framed = False  # Content-Length or chunked: an EOF before the end is a cut, not the end
        self.complete = False
        self.keep_alive = True
        self.received = False
        self.chunks: list[bytes] = []
        self.error: UpstreamError | None = None

    # --- the consumer's side -------------------------------------------------------------------------------------

    def begin(self, skip_body: bool) -> None:
        """Start an exchange: the next bytes the upstream sends are this request's response."""
        if self._new_parser:  # the last exchange was a HEAD: its parser may still expect a body that never comes
            self.parser = httptools.HttpResponseParser(self)
            self._new_parser = False
        self._reset_exchange(skip_body)
        self.active = True

    def write(self, data: bytes) -> None:
        assert self.transport is not None
        self.transport.write(data)

    async def drain(self, seconds: float) -> None:
        """Wait while the socket buffer is full (the upstream reads slower than the client uploads)."""
        if not self._writing_paused or self.lost:
            return
        self._drain = self.loop.create_future()
        timer = self.loop.call_later(seconds, _time_out, self._drain)
        try:
            await self._drain
        except TimeoutError:
            error = UpstreamTimeout(f"the upstream read nothing of the request body for {seconds:g}s")
            self.fail(error)
            raise error from None
        finally:
            timer.cancel()
            self._drain = None

    async def wait_head(self, seconds: float) -> None:
        """Until the response head has arrived; raises what went wrong instead."""
        while not self.head_done:
            if self.error is not None:
                raise self.error
            if not await self._wait(seconds):
                self.fail(UpstreamTimeout(f"no response head within {seconds:g}s"))

    async def read(self, seconds: float) -> bytes:
        """The body bytes received since the last call, b"" once the body is complete; raises UpstreamBodyError
        (after every byte received before the failure was returned) when the body is cut or stalls."""
        while not self.chunks:
            if self.complete:
                return b""
            if self.error is not None:
                raise self.error
            if not await self._wait(seconds):
                self.fail(UpstreamBodyError(f"no body bytes for {seconds:g}s"))
        chunks = self.chunks
        data = chunks[0] if len(chunks) == 1 else b"".join(chunks)
        self.chunks = []
        if self._reading_paused and self.transport is not None:
            self._reading_paused = False
            self.transport.resume_reading()
        return data

    @property
    def finished(self) -> bool:
        """The whole body has been received and taken."""
        return self.complete and not self.chunks

    @property
    def reusable(self) -> bool:
        return self.complete and not self.chunks and self.keep_alive and not self.lost

    async def _wait(self, seconds: float) -> bool:
        """Until the protocol has news; False when `seconds` passed without any. (A bare timer on the future costs
        less than asyncio.timeout(), which this path would pay for every request.)"""
        waiter = self._waiter = self.loop.create_future()
        timer = self.loop.call_later(seconds, _time_out, waiter)
        try:
            await waiter
        except TimeoutError:
            return False
        finally:
            timer.cancel()
            self._waiter = None
        return True

    def fail(self, error: UpstreamError) -> None:
        """Record the exchange's failure and drop the connection (its state is unknown)."""
        if self.error is None and not self.complete:
            self.error = error
        self.keep_alive = False
        self.close()
        self._wake()

    def close(self) -> None:
        self.active = False
        if self.transport is not None and not self.transport.is_closing():
            self.transport.close()

    def _wake(self) -> None:
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    # --- asyncio.Protocol -----------------------------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)

    def data_received(self, data: bytes) -> None:
        if not self.active or self.complete:  # bytes nobody asked for: the framing can no longer be trusted
            self.keep_alive = False
            self.close()
            return
        self.received = True
        in_body, body_before = self.head_done, self.body_bytes
        if not self.head_done:
            self.raw_head += len(data)
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            self.error = self.error or UpstreamError("the upstream switched protocols unasked")
        except httptools.HttpParserError as error:
            if self.complete:  # garbage after a complete response: only the connection is lost
                self.keep_alive = False
            else:
                failure = UpstreamBodyError if self.head_done else UpstreamError
                self.error = failure(f"malformed response from the upstream: {error}")
        if self.error is not None:
            self.fail(self.error)
            return
        if in_body:
            self.framing += len(data) - (self.body_bytes - body_before)
            if self.framing > MAX_UPSTREAM_HEADER_BYTES:  # a trailer (or chunk extension) httptools would keep
                self.fail(UpstreamBodyError(f"over {MAX_UPSTREAM_HEADER_BYTES} bytes of chunk framing or trailers"))
                return
        if not self.head_done and self.raw_head > MAX_UPSTREAM_HEADER_BYTES:
            self.fail(UpstreamError(f"response head over {MAX_UPSTREAM_HEADER_BYTES} bytes"))
            return
        if self.chunks and not self.complete and self.transport is not None:
            self._reading_paused = True
            self.transport.pause_reading()
        self._wake()

    def eof_received(self) -> bool:
        self._ended(None)
        return False

    def connection_lost(self, exc: Exception | None) -> None:
        self.lost = True
        self._ended(exc)
        drain = self._drain
        if drain is not None and not drain.done():
            drain.set_result(None)

    def _ended(self, exc: Exception | None) -> None:
        """The upstream closed (exc None) or reset the connection."""
        self.keep_alive = False
        if not self.active or self.complete or self.error is not None:
            return
        if not self.head_done:
            reason = f"the upstream closed the connection before answering ({exc or 'EOF'})"
            self.error = StaleConnection(reason) if not self.received else UpstreamError(reason)
        elif self.framed:
            self.error = UpstreamBodyError(f"the upstream closed the connection before the body's end ({exc or 'EOF'})")
        elif exc is not None:  # a close-delimited body ends with a close; a reset may have cut it anywhere
            self.error = UpstreamBodyError(f"the upstream reset the connection that ends its response: {exc!r}")
        else:
            self.complete = True
        self._wake()

    def pause_writing(self) -> None:
        self._writing_paused = True

    def resume_writing(self) -> None:
        self._writing_paused = False
        drain = self._drain
        if drain is not None and not drain.done():
            drain.set_result(None)

    # --- httptools callbacks --------------------------------------------------------------------------------------

    def on_message_begin(self) -> None:
        if self.head_done:  # more after this response (an upstream that miscounted): never read it as the next one
            self.keep_alive = False

    def on_header(self, name: bytes, value: bytes) -> None:
        if self.head_done:
            return  # a trailer field after a chunked body: not forwarded
        self.head_size += len(name) + len(value) + 4
        self.headers.append((name, value))
        size = len(name)
        if size == 14 and name.lower() == b"content-length":
            self.framed = True
        elif size == 17 and name.lower() == b"transfer-encoding":
            self.framed = value.rpartition(b",")[2].strip().lower() == b"chunked"

    def on_headers_complete(self) -> None:
        if self.complete:  # a second response nobody asked for
            self.keep_alive = False
            return
        status = self.parser.get_status_code()
        if status == 101:
            self.error = UpstreamError("the upstream switched protocols unasked")
        elif status < 200:
            self.interim = True  # 100 Continue, 103 Early Hints: the real answer follows
        elif self.head_size > MAX_UPSTREAM_HEADER_BYTES:
            self.error = UpstreamError(f"response head over {MAX_UPSTREAM_HEADER_BYTES} bytes")
        else:
            self.status = status
            self.head_done = True
            if self.skip_body:
                self.complete = True
                self.keep_alive = self.parser.should_keep_alive()
                self._new_parser = True

    def on_chunk_header(self) -> None:
        self.framing = 0

    def on_body(self, body: bytes) -> None:
        self.body_bytes += len(body)
        if self.complete:
            self.keep_alive = False  # a body after a HEAD response's head, or after the end
        elif self.head_done:
            self.chunks.append(body)

    def on_message_complete(self) -> None:
        if self.interim:
            self.interim = False
            self.headers = []
            self.head_size = 0
        elif self.complete:
            if not self.skip_body:
                self.keep_alive = False
        elif self.head_done:
            self.complete = True
            self.keep_alive = self.keep_alive and self.parser.should_keep_alive()


def _time_out(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_exception(TimeoutError())


class ConnectionPool:
    """Idle keep-alive connections, the most recently used taken first (so a few stay warm and the rest expire),
    each closed after `idle_timeout`, at most `max_idle` kept."""

    def __init__(self, idle_timeout: float = IDLE_SECONDS, max_idle: int = MAX_IDLE) -> None:
        self.idle_timeout = idle_timeout
        self.max_idle = max_idle
        self._idle: deque[UpstreamConnection] = deque()  # oldest on the left
        self._sweeper: asyncio.TimerHandle | None = None

    def __len__(self) -> int:
        return len(self._idle)

    def take(self) -> UpstreamConnection | None:
        idle = self._idle
        while idle:
            connection = idle.pop()
            if not connection.lost and connection.transport is not None and not connection.transport.is_closing():
                return connection
            connection.close()
        return None

    def put(self, connection: UpstreamConnection) -> None:
        connection.active = False
        connection.idle_since = connection.loop.time()
        if len(self._idle) >= self.max_idle:
            self._idle.popleft().close()
        self._idle.append(connection)
        if self._sweeper is None:
            self._sweeper = connection.loop.call_at(self._idle[0].idle_since + self.idle_timeout, self._sweep)

    def _sweep(self) -> None:
        """Close the connections idle for too long; one timer for the whole pool, set for the oldest."""
        self._sweeper = None
        idle = self._idle
        if not idle:
            return
        loop = idle[0].loop
        now = loop.time()
        while idle and (idle[0].idle_since + self.idle_timeout <= now or idle[0].lost):
            idle.popleft().close()
        if idle:
            self._sweeper = loop.call_at(idle[0].idle_since + self.idle_timeout, self._sweep)

    def close(self) -> None:
        if self._sweeper is not None:
            self._sweeper.cancel()
            self._sweeper = None
        while self._idle:
            self._idle.pop().close()


class Dialer:
    """Opens connections to the upstream (TCP, TLS for https, or a unix socket) within the connect timeout."""

    def __init__(self, upstream: Upstream, timeout: float, ssl_context: ssl.SSLContext | None = None) -> None:
        self.timeout = timeout
        self.path = upstream.unix_socket
        parts = urlsplit(upstream.origin)
        https = parts.scheme == "https"
        self.host = parts.hostname or "localhost"
        self.port = parts.port or (443 if https else 80)
        self.ssl = (ssl_context or ssl.create_default_context()) if https else None

    async def open(self) -> UpstreamConnection:
        loop = asyncio.get_running_loop()
        factory = partial(UpstreamConnection, loop)
        try:
            async with asyncio.timeout(self.timeout):
                if self.path is not None:
                    _, connection = await loop.create_unix_connection(factory, self.path)
                else:
                    _, connection = await loop.create_connection(factory, self.host, self.port, ssl=self.ssl)
        except TimeoutError as timeout:
            raise UpstreamTimeout(f"no connection within {self.timeout:g}s") from timeout
        except OSError as error:
            raise UpstreamConnectError(str(error) or type(error).__name__) from error
        return connection


class UpstreamResponse:
    """A response head, and its body to read chunk by chunk; `release()` when done with it."""

    __slots__ = ("_connection", "_pool", "_read_timeout", "headers", "status")

    def __init__(self, connection: UpstreamConnection, pool: ConnectionPool, read_timeout: float) -> None:
        self._connection: UpstreamConnection | None = connection
        self._pool = pool
        self._read_timeout = read_timeout
        self.status = connection.status
        self.headers = connection.headers

    async def read(self) -> bytes:
        """The next body bytes, b"" at the end; raises UpstreamBodyError when the body is cut or stalls."""
        assert self._connection is not None
        return await self._connection.read(self._read_timeout)

    @property
    def finished(self) -> bool:
        """Every body byte has been read: the last read() returned the end of the body."""
        return self._connection is not None and self._connection.finished

    def release(self) -> None:
        """Back to the pool after a complete exchange both sides keep alive; otherwise the connection is closed."""
        connection, self._connection = self._connection, None
        if connection is None:
            return
        if connection.reusable:
            self._pool.put(connection)
        else:
            connection.close()


class UpstreamClient:
    """Sends requests to the one upstream over pooled keep-alive connections."""

    def __init__(
        self,
        upstream: Upstream,
        connect_timeout: float,
        read_timeout: float,
        idle_timeout: float = IDLE_SECONDS,
        max_idle: int = MAX_IDLE,
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        self.dialer = Dialer(upstream, connect_timeout, ssl_context)
        self.pool = ConnectionPool(idle_timeout, max_idle)
        self.read_timeout = read_timeout

    async def request(
        self,
        method: str,
        target: str,
        headers: list[tuple[bytes, bytes]],
        body: BodySource | None = None,
        chunked: bool = False,
    ) -> UpstreamResponse:
        """Send a request and wait for its response head. With `body`, its pieces are sent with the headers' own
        Content-Length, or chunked when `chunked` (Transfer-Encoding is added here). Raises UpstreamError."""
        if chunked:
            headers = [*headers, (b"transfer-encoding", b"chunked")]
        head = request_head(method, target, headers)
        skip_body = method == "HEAD"
        connection = self.pool.take()
        if connection is not None:
            try:
                return await self._exchange(connection, head, body, chunked, skip_body)
            except StaleConnection:
                connection.close()
                # Sent again only when that cannot do anything twice: no body (one already pulled from the client
                # cannot be sent again) and a method that changes nothing (the upstream may have acted, then closed).
                if body is not None or method not in REPLAYABLE:
                    raise
            except BaseException:
                connection.close()
                raise
        connection = await self.dialer.open()
        try:
            return await self._exchange(connection, head, body, chunked, skip_body)
        except BaseException:
            connection.close()
            raise

    async def _exchange(
        self, connection: UpstreamConnection, head: bytes, body: BodySource | None, chunked: bool, skip_body: bool
    ) -> UpstreamResponse:
        connection.begin(skip_body)
        connection.write(head)
        if body is not None:
            await self._send_body(connection, body, chunked)
        await connection.wait_head(self.read_timeout)
        return UpstreamResponse(connection, self.pool, self.read_timeout)

    async def _send_body(self, connection: UpstreamConnection, body: BodySource, chunked: bool) -> None:
        """Stream the body with flow control; stop early if the upstream closes (it may have answered already)."""
        more = True
        while more:
            chunk, more = await body()
            if connection.lost or connection.error is not None or connection.complete:
                connection.keep_alive = False  # answered or gone before the whole body: never reused
                return
            if chunk:
                connection.write(b"%x\r\n%b\r\n" % (len(chunk), chunk) if chunked else chunk)
                await connection.drain(self.read_timeout)
        if chunked and not connection.lost:
            connection.write(LAST_CHUNK)

    async def close(self) -> None:
        self.pool.close()
