"""Client connections: uvicorn's httptools protocol with bounds on what one client can hold.

uvicorn reads a request head of any size, waits for it forever and waits forever for a stalled upload or a client
that stops reading. On the open internet each of those is a way to hold memory or connections with a few bytes a
minute (slowloris). This protocol adds what nginx and Go servers have:

- the request head is capped in size (414 for the target alone, 431 for the head) and in header count (431);
- a client has `head_timeout` seconds from its first byte (or from connecting) to send the whole head (408);
- an upload that stalls for `stall_timeout` while gate is waiting for it, or a download the client stops reading
  for as long, ends the connection.

Requests that arrive whole in one read (nearly all) arm no timer: the checks cost a few additions per request.
"""

from __future__ import annotations

import asyncio
import urllib.parse
from dataclasses import dataclass
from typing import Any

import httptools
import uvicorn
from uvicorn.protocols.http.flow_control import service_unavailable
from uvicorn.protocols.http.httptools_impl import STATUS_LINE, HttpToolsProtocol
from uvicorn.server import ServerState

from gate import metrics
from gate.cycle import GateCycle

MAX_TARGET_BYTES = 8192  # nginx's default buffer for a request line; longer targets get 414 there too
MAX_HEADER_COUNT = 100  # Apache's LimitRequestFields; browsers send about 20
HEADER_OVERHEAD = 4  # ": " and CRLF around each header line
LINGER_SECONDS = 2.0  # after a refusal, unread input is drained this long so the client can read the answer
LINGER_BYTES = 1 << 20
DEFAULT_HEAD_BYTES = 65536
DEFAULT_HEAD_TIMEOUT = 10.0
DEFAULT_STALL_TIMEOUT = 30.0


@dataclass(frozen=True, slots=True)
class ClientLimits:
    head_bytes: int = DEFAULT_HEAD_BYTES
    head_timeout: float = DEFAULT_HEAD_TIMEOUT
    stall_timeout: float = DEFAULT_STALL_TIMEOUT


class GateServerConfig(uvicorn.Config):
    """uvicorn's Config carrying the client limits to every connection (and to every spawned worker: it is pickled)."""

    def __init__(self, app: Any, client_limits: ClientLimits, **options: Any) -> None:
        super().__init__(app, http="gate.connection:GuardedProtocol", **options)
        self.client_limits = client_limits


class HeadHeldBack(asyncio.Transport):
    """The transport one request's cycle writes to: its first write (the response head) waits for the next one (the
    body, most often in the same turn of the loop; every body message writes, if only b"") or for the end of the
    loop turn, so that a small response goes out in one send. uvloop sends each write at once when nothing is
    queued: the head alone cost a system call per response, and the client a read."""

    __slots__ = ("first", "held", "loop", "transport")

    def __init__(self, transport: asyncio.Transport, loop: asyncio.AbstractEventLoop) -> None:
        super().__init__()
        self.transport = transport
        self.loop = loop
        self.first = True
        self.held: bytes | None = None

    def write(self, data: bytes | bytearray | memoryview) -> None:
        if self.held is not None:
            held, self.held = self.held, None
            self.transport.writelines((held, data))
        elif self.first:
            self.first = False
            self.held = bytes(data)
            self.loop.call_soon(self.release)
        else:
            self.transport.write(data)

    def release(self) -> None:
        if self.held is not None:
            held, self.held = self.held, None
            if not self.transport.is_closing():
                self.transport.write(held)

    def close(self) -> None:
        self.release()
        self.transport.close()

    def is_closing(self) -> bool:
        return self.transport.is_closing()


class HeadRefused(httptools.HttpParserError):
    """Raised from a parser callback to stop reading a request head; uvicorn answers parser errors itself."""


class GuardedProtocol(HttpToolsProtocol):
    def __init__(
        self,
        config: uvicorn.Config,
        server_state: ServerState,
        app_state: dict[str, Any],
        _loop: asyncio.AbstractEventLoop | None = None,
    ) -> None:
        super().__init__(config, server_state, app_state, _loop)
        self.limits = config.client_limits if isinstance(config, GateServerConfig) else ClientLimits()
        self.reading_head = True  # False from the end of a head to the end of its body
        self.head_bytes_read = 0  # bytes received while reading the current head (an upper bound of its size)
        self.refusal = (400, "malformed", "Invalid HTTP request received.")
        self.upgraded = False
        self.lingering = -1  # bytes drained after a refusal; -1 while not refused
        self.watchdog: asyncio.TimerHandle | None = None
        self.write_watchdog: asyncio.TimerHandle | None = None

    # --- connection events --------------------------------------------------------------------------------

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self.watch(self.limits.head_timeout)  # a client that connects and sends nothing is dropped too

    def connection_lost(self, exc: Exception | None) -> None:
        self.unwatch()
        if self.write_watchdog is not None:
            self.write_watchdog.cancel()
            self.write_watchdog = None
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if self.lingering >= 0:
            self.linger(len(data))
            return
        if self.reading_head:
            self.head_bytes_read += len(data)
        super().data_received(data)
        if self.upgraded or self.lingering >= 0 or self.transport.is_closing():
            return
        if self.reading_head:
            if self.head_bytes_read > self.limits.head_bytes:
                self.refuse(431, "head-too-large", "Request header fields too large.")
            elif self.head_bytes_read and self.watchdog is None:
                self.watch(self.limits.head_timeout)  # part of a head came: the rest must follow in time
        elif not self.cycle.more_body or self.cycle.response_complete:
            self.unwatch()
        else:
            self.watch(self.limits.stall_timeout)  # waiting for more of the body: it must keep coming

    def handle_websocket_upgrade(self) -> None:
        """The WebSocket protocol takes the connection over, with timeouts of its own (pings)."""
        self.unwatch()
        self.upgraded = True
        super().handle_websocket_upgrade()

    def pause_writing(self) -> None:
        super().pause_writing()
        if self.write_watchdog is not None:
            self.write_watchdog.cancel()
        self.write_watchdog = self.loop.call_later(self.limits.stall_timeout, self.abandon_download)

    def resume_writing(self) -> None:
        super().resume_writing()
        if self.write_watchdog is not None:
            self.write_watchdog.cancel()
            self.write_watchdog = None

    def abandon_download(self) -> None:
        metrics.client_errors_total.labels("download-stalled").inc()
        self.transport.abort()  # the send buffer is full and will stay so: nothing to flush

    # --- parser callbacks ---------------------------------------------------------------------------------

    def on_headers_complete(self) -> None:
        """The head's limits are checked here, once it is parsed: a head that came in one read of at most
        --max-header-size bytes needs no more than that; a longer one is measured exactly. (A head over several reads
        is bounded as it arrives, in data_received.)"""
        if len(self.url) > MAX_TARGET_BYTES:
            self.stop_head(414, "target-too-long", "URI too long.")
        if len(self.headers) > MAX_HEADER_COUNT or (
            self.head_bytes_read > self.limits.head_bytes and self.head_size() > self.limits.head_bytes
        ):
            self.stop_head(431, "head-too-large", "Request header fields too large.")
        self.reading_head = False
        self.head_bytes_read = 0
        self.unwatch()
        over_limit = self.limit_concurrency is not None and (
            len(self.connections) >= self.limit_concurrency or len(self.tasks) >= self.limit_concurrency
        )
        if over_limit:
            metrics.client_errors_total.labels("over-connections").inc()
        self.start_cycle(over_limit)

    def start_cycle(self, over_limit: bool) -> None:
        """uvicorn's on_headers_complete, with gate's cycle (gate.cycle) on a transport that holds the response head
        back for its body. A HEAD response has no body write to release its head with: it is written at once. Over
        --max-connections the request is answered 503."""
        http_version = self.parser.get_http_version()
        method = self.parser.get_method().decode("ascii")
        self.scope["method"] = method
        if http_version != "1.1":
            self.scope["http_version"] = http_version
        if self.parser.should_upgrade() and self._should_upgrade():
            return
        url = httptools.parse_url(self.url)
        path = url.path.decode("ascii")
        self.scope["path"] = self.root_path + (urllib.parse.unquote(path) if "%" in path else path)
        self.scope["raw_path"] = self.root_path.encode("ascii") + url.path
        self.scope["query_string"] = url.query or b""
        app = self.app
        if over_limit:
            app = service_unavailable
            self.logger.warning("Exceeded concurrency limit.")
        existing = self.cycle
        self.cycle = GateCycle(
            scope=self.scope,
            transport=self.transport if method == "HEAD" else HeadHeldBack(self.transport, self.loop),
            flow=self.flow,
            logger=self.logger,
            access_logger=self.access_logger,
            access_log=False,
            default_headers=self.server_state.default_headers,
            message_event=asyncio.Event(),
            expect_100_continue=self.expect_100_continue,
            keep_alive=http_version != "1.0" and self.parser.should_keep_alive(),
            on_response=self.on_response_complete,
        )
        if existing is None or existing.response_complete:
            self._start_asgi_task(self.cycle, app)
        else:  # pipelined: it starts when the response before it is complete
            self.flow.pause_reading()
            self.pipeline.appendleft((self.cycle, app))

    def on_message_complete(self) -> None:
        self.reading_head = True
        super().on_message_complete()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        if self.cycle.more_body and not self.transport.is_closing():
            # Answered before the request's body was all read (a refusal, a challenge, an upstream that answers
            # early): what the client still sends is drained for a moment, then the connection closes. Kept open,
            # it would have no timer left to close it.
            self.end_and_linger()

    def head_size(self) -> int:
        return len(self.url) + sum(len(name) + len(value) + HEADER_OVERHEAD for name, value in self.headers)

    # --- refusing -------------------------------------------------------------------------------------------

    def stop_head(self, status: int, reason: str, message: str) -> None:
        self.refusal = (status, reason, message)
        raise HeadRefused(message)

    def send_400_response(self, msg: str) -> None:
        """uvicorn's answer to a parser error, with the status a limit chose (431, 414) in place of 400."""
        self.refuse(*self.refusal)

    def refuse(self, status: int, reason: str, message: str) -> None:
        metrics.client_errors_total.labels(reason).inc()
        self.unwatch()
        if self.cycle is not None and not self.cycle.response_complete:
            if self.cycle.response_started:  # a pipelined request went wrong while a response is being sent
                self.transport.close()
                return
            self.cycle.disconnected = True  # the request was cut short: whatever the app answers is dropped
            self.cycle.message_event.set()
        body = message.encode("ascii")
        self.transport.write(
            STATUS_LINE[status]
            + b"content-type: text/plain; charset=utf-8\r\ncontent-length: "
            + str(len(body)).encode("ascii")
            + b"\r\nconnection: close\r\n\r\n"
            + body
        )
        self.end_and_linger()

    def end_and_linger(self) -> None:
        """Closing now, with the rest of the request unread, would send a reset that can destroy the answer before
        the client reads it: end the output, then drain (and ignore) the client's input for a moment first."""
        if self.transport.can_write_eof():
            self.transport.write_eof()
        self.linger(0)

    def linger(self, received: int) -> None:
        if self.lingering < 0:
            self.watch(LINGER_SECONDS)
            self.lingering = 0
        self.lingering += received
        if self.lingering > LINGER_BYTES:
            self.transport.close()

    # --- timers ---------------------------------------------------------------------------------------------

    def watch(self, seconds: float) -> None:
        """(Re)start the watchdog: if it fires, the client was too slow at what it is doing now."""
        self.unwatch()
        self.watchdog = self.loop.call_later(seconds, self.too_slow)

    def unwatch(self) -> None:
        if self.watchdog is not None:
            self.watchdog.cancel()
            self.watchdog = None

    def too_slow(self) -> None:
        self.watchdog = None
        if self.transport.is_closing():
            return
        if self.lingering >= 0:
            self.transport.close()
        elif not self.reading_head and (self.flow.read_paused or self.cycle.waiting_for_100_continue):
            self.watch(self.limits.stall_timeout)  # gate, not the client, is behind (a slow upstream, no 100 sent yet)
        elif self.reading_head and self.head_bytes_read and (self.cycle is None or self.cycle.response_complete):
            self.refuse(408, "head-timeout", "Request timeout.")
        else:
            # Said nothing at all, or stalled an upload: nothing to answer. A request task waiting for the body
            # sees the disconnect and ends its upstream request.
            metrics.client_errors_total.labels("upload-stalled" if not self.reading_head else "silent").inc()
            self.transport.close()
