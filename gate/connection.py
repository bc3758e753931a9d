"""Client connections: gate's HTTP/1.1 server protocol, on httptools' parser, with bounds on what a client can hold.

uvicorn runs it (`GateServerConfig` names it as the HTTP protocol) as it runs its own httptools protocol. This one
does the same per request, compiled with the rest of the request path and with fewer objects per request (the
keep-alive timer is armed once per connection, not per response), and adds what uvicorn lacks. uvicorn reads a
request head of any size, waits for it forever and waits forever for a stalled upload or a client that stops
reading. On the open internet each of those is a way to hold memory or connections with a few bytes a minute
(slowloris). This protocol adds what nginx and Go servers have:

- the request head is capped in size (414 for the target alone, 431 for the head) and in header count (431);
- a client has `head_timeout` seconds from its first byte (or from connecting) to send the whole head (408);
- an upload that stalls for `stall_timeout` while gate is waiting for it, or a download the client stops reading
  for as long, ends the connection;
- an idle keep-alive connection closes `keep_alive_timeout` seconds after its last response.

Requests that arrive whole in one read (nearly all) arm no timer: the checks cost a few additions per request.
"""

from __future__ import annotations

import asyncio
import logging
import urllib.parse
from collections import deque
from typing import Any

import httptools
import uvicorn
from uvicorn._types import ASGI3Application, ASGIVersions, HTTPScope
from uvicorn.protocols.http.flow_control import HIGH_WATER_LIMIT, FlowControl, service_unavailable
from uvicorn.protocols.http.httptools_impl import STATUS_LINE
from uvicorn.protocols.utils import get_local_addr, get_remote_addr, is_ssl
from uvicorn.server import ServerState

from gate import metrics
from gate.cycle import GateCycle
from gate.limits import ClientLimits, GateServerConfig

MAX_TARGET_BYTES = 8192  # nginx's default buffer for a request line; longer targets get 414 there too
MAX_HEADER_COUNT = 100  # Apache's LimitRequestFields; browsers send about 20
HEADER_OVERHEAD = 4  # ": " and CRLF around each header line
LINGER_SECONDS = 2.0  # after a refusal, unread input is drained this long so the client can read the answer
LINGER_BYTES = 1 << 20


log = logging.getLogger("uvicorn.error")  # gate.logs filters repeats of this logger's warnings


class HeadRefused(Exception):
    """Raised from a parser callback to stop reading a request head (the parser raises it on as its own error)."""


class GuardedProtocol(asyncio.Protocol):
    """One client connection: requests parsed as they arrive, each answered by the app in a task of its own, in
    order (pipelined requests wait for the response before them)."""

    transport: asyncio.Transport  # set by connection_made, before anything else is called
    flow: FlowControl

    def __init__(
        self,
        config: uvicorn.Config,
        server_state: ServerState,
        app_state: dict[str, Any],
        _loop: asyncio.AbstractEventLoop | None = None,
    ) -> None:
        if not config.loaded:
            config.load()
        self.config = config
        self.app: ASGI3Application = config.loaded_app
        self.loop = _loop or asyncio.get_event_loop()
        self.limits = config.client_limits if isinstance(config, GateServerConfig) else ClientLimits()
        parser = httptools.HttpRequestParser(self)
        # Lets the first of pipelined requests sent with "Connection: close" be answered (as uvicorn does).
        parser.set_dangerous_leniencies(lenient_data_after_close=True)
        self.parser: httptools.HttpRequestParser | None = parser  # None once closed: it refers back to the protocol
        self.root_path = config.root_path
        self.limit_concurrency = config.limit_concurrency
        self.asgi: ASGIVersions = {"version": config.asgi_version, "spec_version": "2.3"}
        self.app_state = app_state
        self.server_state = server_state
        self.connections: set[Any] = server_state.connections
        self.tasks = server_state.tasks

        self.server: tuple[str, int | None] | None = None
        self.client: tuple[str, int] | None = None
        self.scheme = "http"
        self.pipeline: deque[tuple[GateCycle, ASGI3Application]] = deque()
        self.idle_since = -1.0  # when the last response ended with nothing more to read; -1 while busy
        self.keep_alive_timer: asyncio.TimerHandle | None = None
        self.watchdog: asyncio.TimerHandle | None = None
        self.write_watchdog: asyncio.TimerHandle | None = None
        self.refusal = (400, "malformed", "Invalid HTTP request received.")
        self.lingering = -1  # bytes drained after a refusal; -1 while not refused

        # The request being read
        self.url = b""
        self.headers: list[tuple[bytes, bytes]] = []
        self.scope: HTTPScope | None = None
        self.expect_100_continue = False
        self.upgrading = False  # its head asks for a WebSocket: the WebSocket protocol takes the connection over
        self.reading_head = True  # False from the end of a head to the end of its body
        self.head_bytes_read = 0  # bytes received while reading the current head (an upper bound of its size)
        self.cycle: GateCycle | None = None

    # --- connection events --------------------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.connections.add(self)
        self.transport = transport  # type: ignore[assignment]
        self.flow = FlowControl(self.transport)
        self.server = get_local_addr(self.transport)
        self.client = get_remote_addr(self.transport)
        self.scheme = "https" if is_ssl(self.transport) else "http"
        self.watch(self.limits.head_timeout)  # a client that connects and sends nothing is dropped too

    def connection_lost(self, exc: Exception | None) -> None:
        self.connections.discard(self)
        self.unwatch()
        for timer in (self.write_watchdog, self.keep_alive_timer):
            if timer is not None:
                timer.cancel()
        self.write_watchdog = self.keep_alive_timer = None
        cycle = self.cycle
        if cycle is not None:
            if not cycle.response_complete:
                cycle.disconnected = True
            cycle.message_event.set()
        self.flow.resume_writing()
        if exc is None:
            self.transport.close()
        self.parser = None

    def eof_received(self) -> None:
        pass

    def data_received(self, data: bytes) -> None:
        if self.lingering >= 0:
            self.linger(len(data))
            return
        self.idle_since = -1.0
        if self.reading_head:
            self.head_bytes_read += len(data)
        parser = self.parser
        assert parser is not None, "no data after connection_lost"
        try:
            parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            if self.upgrading:
                self.upgrade_to_websocket()
                return
            log.warning("Unsupported upgrade request.")
        except httptools.HttpParserError:
            log.warning("Invalid HTTP request received.")
            self.refuse(*self.refusal)
            return
        if self.lingering >= 0 or self.transport.is_closing():
            return
        if self.reading_head:
            if self.head_bytes_read > self.limits.head_bytes:
                self.refuse(431, "head-too-large", "Request header fields too large.")
            elif self.head_bytes_read and self.watchdog is None:
                self.watch(self.limits.head_timeout)  # part of a head came: the rest must follow in time
        elif self.cycle is None or not self.cycle.more_body or self.cycle.response_complete:
            self.unwatch()
        else:
            self.watch(self.limits.stall_timeout)  # waiting for more of the body: it must keep coming

    def upgrade_to_websocket(self) -> None:
        """The WebSocket protocol takes the connection over, with timeouts of its own (pings), and reads the head
        again from the bytes given to it."""
        self.unwatch()
        self.connections.discard(self)
        assert self.scope is not None
        output = [self.scope["method"].encode(), b" ", self.url, b" HTTP/1.1\r\n"]
        for name, value in self.headers:
            output += (name, b": ", value, b"\r\n")
        output.append(b"\r\n")
        protocol_class: Any = self.config.ws_protocol_class
        protocol = protocol_class(config=self.config, server_state=self.server_state, app_state=self.app_state)
        protocol.connection_made(self.transport)
        protocol.data_received(b"".join(output))
        self.transport.set_protocol(protocol)

    def shutdown(self) -> None:
        """Called by uvicorn's server to begin a graceful shutdown: idle connections close now, busy ones after their
        response."""
        if self.cycle is None or self.cycle.response_complete:
            self.transport.close()
        else:
            self.cycle.keep_alive = False

    def pause_writing(self) -> None:
        self.flow.pause_writing()
        if self.write_watchdog is not None:
            self.write_watchdog.cancel()
        self.write_watchdog = self.loop.call_later(self.limits.stall_timeout, self.abandon_download)

    def resume_writing(self) -> None:
        self.flow.resume_writing()
        if self.write_watchdog is not None:
            self.write_watchdog.cancel()
            self.write_watchdog = None

    def abandon_download(self) -> None:
        metrics.client_errors_total.labels("download-stalled").inc()
        self.transport.abort()  # the send buffer is full and will stay so: nothing to flush

    # --- parser callbacks ---------------------------------------------------------------------------------

    def on_message_begin(self) -> None:
        self.url = b""
        self.expect_100_continue = False
        self.upgrading = False
        self.headers = []
        scope: HTTPScope = {  # type: ignore[typeddict-item]  # "method", "path" and the rest come with the head
            "type": "http",
            "asgi": self.asgi,
            "http_version": "1.1",
            "server": self.server,
            "client": self.client,
            "scheme": self.scheme,
            "root_path": self.root_path,
            "headers": self.headers,
            "state": self.app_state.copy(),
        }
        self.scope = scope

    def on_url(self, url: bytes) -> None:
        self.url += url

    def on_header(self, name: bytes, value: bytes) -> None:
        name = name.lower()
        if name == b"expect" and value.lower() == b"100-continue":
            self.expect_100_continue = True
        self.headers.append((name, value))

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
        """Fill in the scope and start the app on it; over --max-connections the request is answered 503."""
        scope, parser = self.scope, self.parser
        assert scope is not None and parser is not None, "called by the parser, after on_message_begin"
        http_version = parser.get_http_version()
        scope["method"] = parser.get_method().decode("ascii")
        if http_version != "1.1":
            scope["http_version"] = http_version
        if parser.should_upgrade() and self.asks_for_websocket():
            self.upgrading = True
            return
        url: Any = httptools.parse_url(self.url)  # its query is None without a "?", whatever httptools' stubs say
        path = url.path.decode("ascii")
        scope["path"] = self.root_path + (urllib.parse.unquote(path) if "%" in path else path)
        scope["raw_path"] = self.root_path.encode("ascii") + url.path
        scope["query_string"] = url.query or b""
        app = self.app
        if over_limit:
            app = service_unavailable
            log.warning("Exceeded concurrency limit.")
        existing = self.cycle
        self.cycle = GateCycle(
            scope,
            self.transport,
            self.flow,
            self.loop,
            self.server_state.default_headers,
            self.expect_100_continue,
            http_version != "1.0" and parser.should_keep_alive(),
            self.on_response_complete,
        )
        if existing is None or existing.response_complete:
            self.start_app(self.cycle, app)
        else:  # pipelined: it starts when the response before it is complete
            self.flow.pause_reading()
            self.pipeline.appendleft((self.cycle, app))

    def asks_for_websocket(self) -> bool:
        if self.config.ws_protocol_class is None:
            return False
        connection: list[bytes] = []
        upgrade = None
        for name, value in self.headers:
            if name == b"connection":
                connection = [token.lower().strip() for token in value.split(b",")]
            elif name == b"upgrade":
                upgrade = value.lower()
        return b"upgrade" in connection and upgrade == b"websocket"

    def start_app(self, cycle: GateCycle, app: ASGI3Application) -> None:
        task = self.loop.create_task(cycle.run_asgi(app))
        task.add_done_callback(self.tasks.discard)
        self.tasks.add(task)

    def on_body(self, body: bytes) -> None:
        cycle = self.cycle
        if self.upgrading or cycle is None or cycle.response_complete:
            return
        cycle.body += body
        if len(cycle.body) > HIGH_WATER_LIMIT:
            self.flow.pause_reading()
        cycle.message_event.set()

    def on_message_complete(self) -> None:
        self.reading_head = True
        cycle = self.cycle
        if self.upgrading or cycle is None or cycle.response_complete:
            return
        cycle.more_body = False
        cycle.message_event.set()

    def on_response_complete(self) -> None:
        """The cycle's response is complete: start a pipelined request, or wait for the next one."""
        self.server_state.total_requests += 1
        if self.transport.is_closing():
            return
        self.flow.resume_reading()
        cycle = self.cycle
        if cycle is not None and cycle.more_body:
            # Answered before the request's body was all read (a refusal, a challenge, an upstream that answers
            # early): what the client still sends is drained for a moment, then the connection closes. Kept open,
            # it would have no timer left to close it.
            self.end_and_linger()
            return
        if self.pipeline:
            next_cycle, app = self.pipeline.pop()
            self.start_app(next_cycle, app)
        else:
            self.wait_for_next_request()

    def head_size(self) -> int:
        return len(self.url) + sum(len(name) + len(value) + HEADER_OVERHEAD for name, value in self.headers)

    # --- refusing -------------------------------------------------------------------------------------------

    def stop_head(self, status: int, reason: str, message: str) -> None:
        self.refusal = (status, reason, message)
        raise HeadRefused(message)

    def refuse(self, status: int, reason: str, message: str) -> None:
        metrics.client_errors_total.labels(reason).inc()
        self.unwatch()
        cycle = self.cycle
        if cycle is not None and not cycle.response_complete:
            if cycle.response_started:  # a pipelined request went wrong while a response is being sent
                self.transport.close()
                return
            cycle.disconnected = True  # the request was cut short: whatever the app answers is dropped
            cycle.message_event.set()
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

    def wait_for_next_request(self) -> None:
        """An idle keep-alive connection closes after `keep_alive_timeout` seconds (--keep-alive-timeout). Its timer
        is armed once and moved on lazily when it fires, not set and cancelled around every response."""
        self.idle_since = self.loop.time()
        if self.keep_alive_timer is None:
            self.keep_alive_timer = self.loop.call_later(self.limits.keep_alive_timeout, self.keep_alive_expired)

    def keep_alive_expired(self) -> None:
        self.keep_alive_timer = None
        if self.idle_since < 0 or self.transport.is_closing():
            return  # busy: armed again when its response ends
        left = self.idle_since + self.limits.keep_alive_timeout - self.loop.time()
        if left > 0:
            self.keep_alive_timer = self.loop.call_later(left, self.keep_alive_expired)
        else:
            self.transport.close()

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
        cycle = self.cycle
        if self.lingering >= 0:
            self.transport.close()
        elif not self.reading_head and cycle is not None and (self.flow.read_paused or cycle.waiting_for_100_continue):
            self.watch(self.limits.stall_timeout)  # gate, not the client, is behind (a slow upstream, no 100 sent yet)
        elif self.reading_head and self.head_bytes_read and (cycle is None or cycle.response_complete):
            self.refuse(408, "head-timeout", "Request timeout.")
        else:
            # Said nothing at all, or stalled an upload: nothing to answer. A request task waiting for the body
            # sees the disconnect and ends its upstream request.
            metrics.client_errors_total.labels("upload-stalled" if not self.reading_head else "silent").inc()
            self.transport.close()
