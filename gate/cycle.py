"""One request's exchange on a client connection: the ASGI `receive` and `send` of gate's HTTP/1.1 server.

It writes what uvicorn's own request-response cycle writes, byte for byte (tests/test_cycle.py compares the two), with
less work per response: all header names are checked in one regular-expression search and all values in another,
the three names that frame the response (Content-Length, Transfer-Encoding, Connection) are found by one set lookup,
and the response head is held back until the first piece of the body, so that a small response goes out in one
send. (uvloop sends each write at once when nothing is queued: the head alone cost a system call per response, and
the client a read.) A head whose body does not follow in the same turn of the event loop is sent at the end of it.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Iterable

from uvicorn._types import ASGI3Application, ASGIReceiveEvent, ASGISendEvent, HTTPScope
from uvicorn.protocols.http.flow_control import FlowControl
from uvicorn.protocols.http.httptools_impl import HEADER_RE, HEADER_VALUE_RE, STATUS_LINE

FRAMING = frozenset({b"content-length", b"transfer-encoding", b"connection"})
LAST_CHUNK = b"0\r\n\r\n"
CONTINUE = b"HTTP/1.1 100 Continue\r\n\r\n"
INTERNAL_ERROR: list[tuple[bytes, bytes]] = [
    (b"content-type", b"text/plain; charset=utf-8"),
    (b"content-length", b"21"),
    (b"connection", b"close"),
]

log = logging.getLogger("uvicorn.error")  # gate.logs filters repeats of this logger's warnings


class GateCycle:
    """The state of one request and its response, from the end of the request head to the end of the response."""

    def __init__(
        self,
        scope: HTTPScope,
        transport: asyncio.Transport,
        flow: FlowControl,
        loop: asyncio.AbstractEventLoop,
        default_headers: list[tuple[bytes, bytes]],
        expect_100_continue: bool,
        keep_alive: bool,
        on_response: Callable[[], None] | None,
    ) -> None:
        self.scope = scope
        self.transport = transport
        self.flow = flow
        self.loop = loop
        self.default_headers = default_headers
        self.on_response = on_response  # the connection's, called once the response is complete
        self.message_event = asyncio.Event()  # set when there is news for `receive`: body, its end, a disconnect
        self.head_only = scope["method"] == "HEAD"

        self.disconnected = False
        self.keep_alive = keep_alive
        self.waiting_for_100_continue = expect_100_continue

        self.body = bytearray()
        self.more_body = True

        self.response_started = False
        self.response_complete = False
        self.chunked_encoding: bool | None = None
        self.expected_content_length = 0
        self.held: bytes | None = None  # the response head, until the body's first piece or the end of the loop turn

    async def run_asgi(self, app: ASGI3Application) -> None:
        try:
            result: object = await app(self.scope, self.receive, self.send)  # type: ignore[func-returns-value]
        except BaseException as exc:
            log.error("Exception in ASGI application\n", exc_info=exc)
            if not self.response_started:
                await self.send_500_response()
            else:
                self.close()
        else:
            if result is not None:
                log.error("ASGI callable should return None, but returned '%s'.", result)
                self.close()
            elif not self.response_started and not self.disconnected:
                log.error("ASGI callable returned without starting response.")
                await self.send_500_response()
            elif not self.response_complete and not self.disconnected:
                log.error("ASGI callable returned without completing response.")
                self.close()
        finally:
            self.on_response = None  # the cycle no longer holds its connection

    async def send_500_response(self) -> None:
        await self.send({"type": "http.response.start", "status": 500, "headers": INTERNAL_ERROR})
        await self.send({"type": "http.response.body", "body": b"Internal Server Error", "more_body": False})

    async def receive(self) -> ASGIReceiveEvent:
        if self.waiting_for_100_continue and not self.transport.is_closing():
            self.transport.write(CONTINUE)
            self.waiting_for_100_continue = False
        if not self.disconnected and not self.response_complete:
            self.flow.resume_reading()
            await self.message_event.wait()
            self.message_event.clear()
        if self.disconnected or self.response_complete:
            return {"type": "http.disconnect"}
        body = bytes(self.body)
        self.body = bytearray()
        return {"type": "http.request", "body": body, "more_body": self.more_body}

    async def send(self, message: ASGISendEvent) -> None:
        if self.flow.write_paused and not self.disconnected:
            await self.flow.drain()
        if self.disconnected:
            return
        kind = message["type"]
        if not self.response_started:
            if kind != "http.response.start":
                raise RuntimeError(f"Expected ASGI message 'http.response.start', but got '{kind}'.")
            self.response_started = True
            self.waiting_for_100_continue = False
            headers: Iterable[tuple[bytes, bytes]] = message.get("headers", ())  # type: ignore[assignment]
            if self.default_headers:
                headers = [*self.default_headers, *headers]
            head = self.response_head(message["status"], headers)  # type: ignore[typeddict-item]
            if self.head_only:  # no body write follows to carry it
                self.transport.write(head)
            else:
                self.held = head
                self.loop.call_soon(self.release_head)
        elif not self.response_complete:
            if kind != "http.response.body":
                raise RuntimeError(f"Expected ASGI message 'http.response.body', but got '{kind}'.")
            self.send_body(message.get("body", b""), message.get("more_body", False))  # type: ignore[arg-type]
        else:
            raise RuntimeError(f"Unexpected ASGI message '{kind}' sent, after response already completed.")

    def response_head(self, status: int, headers: Iterable[tuple[bytes, bytes]]) -> bytes:
        """The status line and headers; notes the framing (length or chunks) and whether the connection ends."""
        content = [STATUS_LINE[status]]
        closing = False
        for name, value in headers:
            name = name.lower()
            if name in FRAMING:
                if name == b"content-length":
                    if self.chunked_encoding is None:
                        self.expected_content_length = int(value.decode())
                        self.chunked_encoding = False
                elif name == b"transfer-encoding":
                    if value.lower() == b"chunked":
                        self.expected_content_length = 0
                        self.chunked_encoding = True
                elif b"close" in [token.lower().strip() for token in value.split(b",")]:
                    self.keep_alive = False
                    closing = True
            content += (name, b": ", value, b"\r\n")
        # Names sit at 1, 5, 9... and values at 3, 7, 11...: a forbidden byte in one is a forbidden byte in their join.
        if HEADER_RE.search(b"".join(content[1::4])):
            raise RuntimeError("Invalid HTTP header name.")
        if HEADER_VALUE_RE.search(b"".join(content[3::4])):
            raise RuntimeError("Invalid HTTP header value.")
        if not self.keep_alive and not closing:
            content.append(b"connection: close\r\n")
        if self.chunked_encoding is None and not self.head_only and status not in (204, 304):
            self.chunked_encoding = True  # neither a length nor chunks declared
            content.append(b"transfer-encoding: chunked\r\n")
        content.append(b"\r\n")
        return b"".join(content)

    def send_body(self, body: bytes, more_body: bool) -> None:
        if self.head_only:
            self.expected_content_length = 0
        elif self.chunked_encoding:
            if body:
                self.write(b"%x\r\n%b\r\n%b" % (len(body), body, b"" if more_body else LAST_CHUNK))
            else:  # written even when empty: it releases a head held back for the body
                self.write(b"" if more_body else LAST_CHUNK)
        else:
            if len(body) > self.expected_content_length:
                raise RuntimeError("Response content longer than Content-Length")
            self.expected_content_length = self.expected_content_length - len(body)
            self.write(body)
        if not more_body:
            if self.expected_content_length != 0:
                raise RuntimeError("Response content shorter than Content-Length")
            self.response_complete = True
            self.message_event.set()
            if not self.keep_alive:
                self.transport.close()
            if self.on_response is not None:
                self.on_response()

    def write(self, data: bytes) -> None:
        held = self.held
        if held is None:
            self.transport.write(data)
        else:
            self.held = None
            self.transport.writelines((held, data))

    def release_head(self) -> None:
        held = self.held
        if held is not None:
            self.held = None
            if not self.transport.is_closing():
                self.transport.write(held)

    def close(self) -> None:
        """End the connection after whatever was written, the held head included."""
        self.release_head()
        self.transport.close()
