"""One request's exchange on a client connection: uvicorn's request-response cycle with a leaner response head.

uvicorn's `send` checks every response header with two regular expressions, compares its name three times and
builds the head from four pieces per header. gate's responses carry a dozen headers (the upstream's and the
terms'), and that loop was the largest part of uvicorn's own cost per request. Here all names are checked in one
search, all values in another, and the three names that frame the response (Content-Length, Transfer-Encoding,
Connection) are found by one set lookup. What goes on the wire is what uvicorn writes, byte for byte.
"""

from __future__ import annotations

from collections.abc import Iterable

from uvicorn._types import ASGISendEvent
from uvicorn.protocols.http.httptools_impl import HEADER_RE, HEADER_VALUE_RE, STATUS_LINE, RequestResponseCycle

FRAMING = frozenset({b"content-length", b"transfer-encoding", b"connection"})
LAST_CHUNK = b"0\r\n\r\n"


class GateCycle(RequestResponseCycle):
    """uvicorn's cycle for gate's client connections (gate.connection.GuardedProtocol creates it). uvicorn's
    optional access log is left out: gate writes its own."""

    async def send(self, message: ASGISendEvent) -> None:
        if self.flow.write_paused and not self.disconnected:
            await self.flow.drain()
        if self.disconnected:
            return
        if not self.response_started:
            if message["type"] != "http.response.start":
                raise RuntimeError(f"Expected ASGI message 'http.response.start', but got '{message['type']}'.")
            self.response_started = True
            self.waiting_for_100_continue = False
            headers: Iterable[tuple[bytes, bytes]] = message.get("headers", ())
            if self.default_headers:
                headers = [*self.default_headers, *headers]
            self.transport.write(self.response_head(message["status"], headers))
        elif not self.response_complete:
            if message["type"] != "http.response.body":
                raise RuntimeError(f"Expected ASGI message 'http.response.body', but got '{message['type']}'.")
            self.send_body(message.get("body", b""), message.get("more_body", False))
        else:
            raise RuntimeError(f"Unexpected ASGI message '{message['type']}' sent, after response already completed.")

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
        if self.chunked_encoding is None and self.scope["method"] != "HEAD" and status not in (204, 304):
            self.chunked_encoding = True  # neither a length nor chunks declared
            content.append(b"transfer-encoding: chunked\r\n")
        content.append(b"\r\n")
        return b"".join(content)

    def send_body(self, body: bytes, more_body: bool) -> None:
        if self.scope["method"] == "HEAD":
            self.expected_content_length = 0
        elif self.chunked_encoding:
            if body:
                self.transport.write(b"%x\r\n%b\r\n%b" % (len(body), body, b"" if more_body else LAST_CHUNK))
            else:  # written even when empty: it releases a head held back for the body (gate.connection)
                self.transport.write(b"" if more_body else LAST_CHUNK)
        else:
            if len(body) > self.expected_content_length:
                raise RuntimeError("Response content longer than Content-Length")
            self.expected_content_length -= len(body)
            self.transport.write(body)
        if not more_body:
            if self.expected_content_length != 0:
                raise RuntimeError("Response content shorter than Content-Length")
            self.response_complete = True
            self.message_event.set()
            if not self.keep_alive:
                self.transport.close()
            self.on_response()
