"""Upstream forwarding: gate's own HTTP/1.1 client (gate/upstream.py) with bodies streamed both ways, and WebSockets
passed through with aiohttp.

This is the per-request path for allowed requests, kept a plain ASGI coroutine (see docs/architecture.md for the
measurements behind the client and the absence of framework objects here).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Iterable, Sequence
from urllib.parse import quote_from_bytes

import aiohttp
from yarl import URL

from gate.asgi import Receive, Scope, Send
from gate.config import Upstream
from gate.facts import Facts
from gate.responses import Outcome, send_page
from gate.upstream import MAX_UPSTREAM_HEADER_BYTES, UpstreamClient, UpstreamError, UpstreamResponse

log = logging.getLogger("gate.proxy")

# RFC 9110 §7.6.1 connection-specific headers, plus the non-standard ones proxies still see.
HOP_BY_HOP = frozenset(
    {
        b"connection",
        b"keep-alive",
        b"proxy-authenticate",
        b"proxy-authorization",
        b"proxy-connection",
        b"te",
        b"trailer",
        b"transfer-encoding",
        b"upgrade",
        b"http2-settings",
    }
)
# Request headers gate writes itself (or that the server in front of it already acted on).
SET_BY_GATE = frozenset({b"x-forwarded-for", b"x-forwarded-proto", b"x-forwarded-host", b"x-real-ip", b"expect"})
# Other ways clients name their address: believed only when gate's own peer is a trusted proxy.
CLIENT_ADDRESS_HEADERS = frozenset(
    {b"forwarded", b"true-client-ip", b"x-client-ip", b"cf-connecting-ip", b"fastly-client-ip", b"x-cluster-client-ip"}
)
# Handshake headers the forwarding client generates for its own WebSocket connection to the upstream.
WEBSOCKET_HANDSHAKE = frozenset(
    {b"sec-websocket-key", b"sec-websocket-version", b"sec-websocket-extensions", b"sec-websocket-protocol"}
)
# Once a response has been this many chunks long, watch for the client going away so a large download stops.
DISCONNECT_WATCH_AFTER_CHUNKS = 8
DROPPED_FROM_TRUSTED = HOP_BY_HOP | SET_BY_GATE
DROPPED_FROM_UNTRUSTED = DROPPED_FROM_TRUSTED | CLIENT_ADDRESS_HEADERS


class ClientGone(Exception):
    """The client disconnected while gate was still reading its request body."""


def connection_tokens(headers: Iterable[tuple[bytes, bytes]]) -> frozenset[bytes]:
    """Header names listed in Connection: they are hop-by-hop too (RFC 9110 §7.6.1)."""
    return named_in_connection(value for name, value in headers if name.lower() == b"connection")


def named_in_connection(values: Iterable[bytes]) -> frozenset[bytes]:
    """The header names in Connection header values."""
    tokens = [token.strip().lower() for value in values for token in value.split(b",")]
    return frozenset(token for token in tokens if token)


def forwarded_headers(
    scope_headers: list[tuple[bytes, bytes]], facts: Facts, host: bytes | None, skip: frozenset[bytes] = frozenset()
) -> list[tuple[bytes, bytes]]:
    """The client's headers minus hop-by-hop ones, plus X-Forwarded-*; Host replaced when `host` is given."""
    dropped = DROPPED_FROM_TRUSTED if facts.peer_trusted else DROPPED_FROM_UNTRUSTED
    connection = facts.headers.get("connection")  # every Connection header, joined: no second pass over them all
    extra = skip | named_in_connection([connection.encode("latin-1")] if connection else [])
    if host is not None:
        extra |= {b"host"}
    if extra:
        dropped |= extra
    headers = [(name, value) for name, value in scope_headers if name.lower() not in dropped]
    chain = facts.headers.get("x-forwarded-for") if facts.peer_trusted else None
    headers.append((b"x-forwarded-for", (f"{chain}, {facts.peer}" if chain else facts.peer).encode("latin-1")))
    headers.append((b"x-forwarded-proto", facts.scheme.encode("latin-1")))
    if facts.host:
        headers.append((b"x-forwarded-host", facts.host.encode("latin-1")))
    headers.append((b"x-real-ip", facts.ip.encode("latin-1")))
    if host is not None:
        headers.append((b"host", host))
    return headers


def response_headers(
    raw_headers: Sequence[tuple[bytes, bytes]], added: Sequence[tuple[bytes, bytes]] = (), bodiless: bool = False
) -> list[tuple[bytes, bytes]]:
    """The upstream's end-to-end headers, plus gate's `added` ones the upstream did not set itself. A `bodiless`
    answer (204, 304) loses its Content-Length: a 304 may carry the page's, but uvicorn would then wait for a body."""
    named = [(name.lower(), value) for name, value in raw_headers]
    dropped = HOP_BY_HOP | connection_tokens(named)
    if bodiless:
        dropped |= {b"content-length"}
    kept = [(name, value) for name, value in named if name not in dropped]
    if added:
        present = {name for name, _ in kept}
        kept += [(name, value) for name, value in added if name not in present]
    return kept


def request_target(scope: Scope) -> str | None:
    """The path and query to forward, byte-exact; None for a request-target that is not an origin-form path."""
    raw_path: bytes = scope.get("raw_path") or scope["path"].encode()
    if not raw_path.startswith(b"/"):
        return None
    if not raw_path.isascii():
        raw_path = quote_from_bytes(raw_path, safe="/%:@!$&'()*+,;=-._~").encode()
    query: bytes = scope.get("query_string", b"")
    if query and not query.isascii():
        query = quote_from_bytes(query, safe="/?%:@!$&'()*+,;=-._~").encode()
    target = raw_path.decode("ascii")
    return f"{target}?{query.decode('ascii')}" if query else target


def body_framing(scope: Scope) -> tuple[bool, bool]:
    """Whether the request has a body, and whether it came chunked (else it has a Content-Length, forwarded as is)."""
    for name, value in scope["headers"]:
        if name == b"transfer-encoding":
            return True, True
        if name == b"content-length" and value.strip() != b"0":
            return True, False
    return False, False


class Forwarder:
    """Forwards allowed requests to the upstream. `start()` in the lifespan, `close()` at shutdown."""

    def __init__(self, upstream: Upstream, preserve_host: bool, connect_timeout: float, read_timeout: float):
        self.upstream = upstream
        self.base = upstream.origin + upstream.base_path
        self.host_override = None if preserve_host else upstream.host  # also for gate's own fetches (str)
        self.upstream_host = upstream.host.encode("latin-1")  # encoded once, not per request
        self.timeout = aiohttp.ClientTimeout(total=None, sock_connect=connect_timeout, sock_read=read_timeout)
        self.client = UpstreamClient(upstream, connect_timeout, read_timeout)
        self._session: aiohttp.ClientSession | None = None

    def url(self, target: str) -> URL:
        """The upstream URL for an origin-form target, kept byte for byte (already encoded)."""
        return URL(self.base + target, encoded=True)

    @property
    def session(self) -> aiohttp.ClientSession:
        """aiohttp, for WebSockets and gate's own fetches (robots.txt, previews); requests go through `client`."""
        if self._session is None:
            raise RuntimeError("Forwarder.start() was not awaited")
        return self._session

    async def start(self) -> None:
        connector: aiohttp.BaseConnector
        if self.upstream.unix_socket:
            connector = aiohttp.UnixConnector(path=self.upstream.unix_socket, limit=0, keepalive_timeout=15)
        else:
            connector = aiohttp.TCPConnector(limit=0, keepalive_timeout=15, ttl_dns_cache=60)
        self._session = aiohttp.ClientSession(
            connector=connector,
            timeout=self.timeout,
            auto_decompress=False,  # forward bytes as the upstream sent them
            cookie_jar=aiohttp.DummyCookieJar(),  # never carry one client's cookies to another
            skip_auto_headers=("User-Agent", "Accept", "Accept-Encoding", "Content-Type"),
            max_line_size=MAX_UPSTREAM_HEADER_BYTES,
            max_field_size=MAX_UPSTREAM_HEADER_BYTES,
        )

    async def close(self) -> None:
        await self.client.close()
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def ping(self) -> None:
        """Raise when the upstream cannot be reached (used by /readyz): any HTTP answer counts as reachable."""
        try:
            response = await self.client.request("HEAD", self.upstream.base_path + "/", [(b"host", self.upstream_host)])
        except UpstreamError as error:
            raise ConnectionError(f"{error.kind}: {error}") from error
        response.release()

    async def http(
        self, scope: Scope, receive: Receive, send: Send, facts: Facts, added: Sequence[tuple[bytes, bytes]] = ()
    ) -> Outcome:
        """Forward one request and stream the response back, with the `added` response headers (the site's terms)."""
        target = request_target(scope)
        if target is None:
            await send_page(send, 400, "Bad request", "The request target is not a path.")
            return Outcome(400)
        has_body, chunked = body_framing(scope)
        body_done = not has_body

        async def request_body() -> tuple[bytes, bool]:
            nonlocal body_done
            message = await receive()
            if message["type"] == "http.disconnect":
                raise ClientGone("client went away during the upload")
            more: bool = message.get("more_body", False)
            body_done = not more
            return message.get("body", b""), more

        # The upstream's own Host when configured, or for an HTTP/1.0 client without one (HTTP/1.1 needs it).
        host = self.upstream_host if self.host_override is not None or "host" not in facts.headers else None
        headers = forwarded_headers(scope["headers"], facts, host)
        started = time.perf_counter()
        try:
            response = await self.client.request(
                scope["method"],
                self.upstream.base_path + target,
                headers,
                request_body if has_body else None,
                chunked,
            )
        except ClientGone:
            return Outcome(499)  # nginx's code for "client closed the request"
        except UpstreamError as error:
            if error.kind == "protocol":
                log.warning("upstream protocol error: %s", error)
            return await self._fail(send, error.status, error.kind, started)
        upstream_seconds = time.perf_counter() - started
        try:
            await send(
                {
                    "type": "http.response.start",
                    "status": response.status,
                    "headers": response_headers(response.headers, added, bodiless=response.status in (204, 304)),
                }
            )
            completed = await self._stream_body(response, receive, send, body_done)
        finally:
            response.release()
        return Outcome(response.status, upstream_seconds, None if completed else "aborted")

    async def _stream_body(self, response: UpstreamResponse, receive: Receive, send: Send, can_watch: bool) -> bool:
        """Stream the upstream's body to the client. False when the upstream failed mid-body: the response is
        then left incomplete, so the server drops the connection and the client sees a truncated transfer."""
        watcher: asyncio.Task[None] | None = None
        chunks = 0
        try:
            while True:
                try:
                    chunk = await response.read()
                except UpstreamError as error:
                    log.warning("upstream failed mid-response: %s", error)
                    return False
                if response.finished:
                    await send({"type": "http.response.body", "body": chunk, "more_body": False})
                    return True
                await send({"type": "http.response.body", "body": chunk, "more_body": True})
                chunks += 1
                if watcher is None and can_watch and chunks >= DISCONNECT_WATCH_AFTER_CHUNKS:
                    watcher = asyncio.ensure_future(wait_for_disconnect(receive))
                if watcher is not None and watcher.done():
                    return True  # stop pulling a body nobody will read; release() closes the connection
        finally:
            if watcher is not None:
                watcher.cancel()

    async def _fail(self, send: Send, status: int, kind: str, started: float) -> Outcome:
        waited = time.perf_counter() - started
        if status == 504:
            message = "The site did not answer in time. Please try again in a moment."
            title = "Gateway timeout"
        else:
            message = "The site behind this gateway cannot be reached right now. Please try again in a moment."
            title = "Bad gateway"
        log.warning("upstream %s error after %.3fs: answering %d", kind, waited, status)
        await send_page(send, status, title, message, [(b"retry-after", b"5")])
        return Outcome(status, None, kind)

    async def websocket(self, scope: Scope, receive: Receive, send: Send, facts: Facts) -> Outcome:
        """Open the same WebSocket upstream, accept the client with the upstream's subprotocol, pump both ways."""
        target = request_target(scope)
        connect = await receive()  # "websocket.connect"
        if target is None or connect["type"] != "websocket.connect":
            await send({"type": "websocket.close", "code": 1008})
            return Outcome(403)
        host = self.upstream_host if self.host_override is not None else None
        headers = forwarded_headers(scope["headers"], facts, host, WEBSOCKET_HANDSHAKE)
        started = time.perf_counter()
        try:
            upstream = await self.session.ws_connect(
                self.url(target),
                protocols=scope.get("subprotocols") or (),
                headers=[(name.decode("latin-1"), value.decode("latin-1")) for name, value in headers],
                autoping=True,
                max_msg_size=0,
            )
        except (TimeoutError, aiohttp.ClientError) as error:
            log.warning("upstream websocket failed: %s", error)
            await send({"type": "websocket.close", "code": 1011})
            return Outcome(502, None, "connect")
        upstream_seconds = time.perf_counter() - started
        await send({"type": "websocket.accept", "subprotocol": upstream.protocol})
        client_to_upstream = asyncio.ensure_future(pump_client(receive, upstream))
        upstream_to_client = asyncio.ensure_future(pump_upstream(upstream, send))
        try:
            await asyncio.wait([client_to_upstream, upstream_to_client], return_when=asyncio.FIRST_COMPLETED)
        finally:
            client_to_upstream.cancel()
            upstream_to_client.cancel()
            await upstream.close()
        return Outcome(101, upstream_seconds)


def sendable_close_code(code: int | None) -> int:
    """1005 (no status) and 1006 (abnormal closure) describe a close but may not be sent in one (RFC 6455 §7.4.1)."""
    return 1000 if code in (None, 1005, 1006, 1015) else code


async def wait_for_disconnect(receive: Receive) -> None:
    while (await receive())["type"] != "http.disconnect":
        pass


async def pump_client(receive: Receive, upstream: aiohttp.ClientWebSocketResponse) -> None:
    while True:
        message = await receive()
        if message["type"] == "websocket.disconnect":
            await upstream.close(code=message.get("code", 1000))
            return
        if message.get("text") is not None:
            await upstream.send_str(message["text"])
        elif message.get("bytes") is not None:
            await upstream.send_bytes(message["bytes"])


async def pump_upstream(upstream: aiohttp.ClientWebSocketResponse, send: Send) -> None:
    async for message in upstream:
        if message.type is aiohttp.WSMsgType.TEXT:
            await send({"type": "websocket.send", "text": message.data})
        elif message.type is aiohttp.WSMsgType.BINARY:
            await send({"type": "websocket.send", "bytes": message.data})
        else:
            break
    with contextlib.suppress(Exception):  # the client may already be gone
        await send({"type": "websocket.close", "code": sendable_close_code(upstream.close_code)})
