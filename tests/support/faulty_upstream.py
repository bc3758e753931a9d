"""An HTTP/1.1 upstream that fails on purpose, in a thread: each path is a way for a real server to break mid-answer.

| path | what the upstream does after reading the request |
|---|---|
| `/reset` | resets the connection (RST) without answering |
| `/reset-mid-body` | sends the headers (Content-Length: 65536) and 4 KiB of body, then resets the connection |
| `/reset-unframed` | sends headers without Content-Length or chunking (the close ends the body), 4 KiB, then resets |
| `/unframed` | the same, but closes the connection normally: a complete body |
| `/short` | sends the headers (Content-Length: 10000) and 1000 bytes, then closes the connection normally |
| `/cut-chunked` | sends a chunked body's first two chunks, then closes the connection before the last chunk |
| `/not-modified` | a 304 carrying the page's Content-Length (allowed: it describes the page, not this answer) |
| `/head-first` | sends the headers (Content-Length: 5), then the body `late\n` LATE_BODY_SECONDS later |
| anything else | a complete 200 answer, `ok\n`, and closes the connection |
"""

from __future__ import annotations

import socket
import socketserver
import struct
import time
from contextlib import AbstractContextManager

from tests.support.http_server import http_server

SHORT_LENGTH = 10_000
SHORT_SENT = 1000
RESET_LENGTH = 65_536
RESET_SENT = 4096
UNFRAMED_SENT = 4096
CHUNKS = (b"first chunk\n", b"second chunk\n")
LATE_BODY_SECONDS = 1.0


def reset(connection: socket.socket) -> None:
    """Close with SO_LINGER 0: the kernel sends RST instead of FIN and drops anything unsent."""
    connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    connection.close()


def head(status: str, *headers: str) -> bytes:
    return "\r\n".join(
        [f"HTTP/1.1 {status}", "Content-Type: text/plain", "Connection: close", *headers, "", ""]
    ).encode()


class _Handler(socketserver.BaseRequestHandler):
    request: socket.socket

    def handle(self) -> None:
        received = b""
        while b"\r\n\r\n" not in received:
            chunk = self.request.recv(65536)
            if not chunk:
                return
            received += chunk
        path = received.split(b" ", 2)[1].decode("latin-1")
        connection = self.request
        if path == "/reset":
            reset(connection)
        elif path == "/reset-mid-body":
            connection.sendall(head("200 OK", f"Content-Length: {RESET_LENGTH}") + b"x" * RESET_SENT)
            reset(connection)
        elif path == "/reset-unframed":
            connection.sendall(head("200 OK") + b"z" * UNFRAMED_SENT)
            reset(connection)
        elif path == "/unframed":
            connection.sendall(head("200 OK") + b"u" * UNFRAMED_SENT)
            connection.close()
        elif path == "/short":
            connection.sendall(head("200 OK", f"Content-Length: {SHORT_LENGTH}") + b"y" * SHORT_SENT)
            connection.close()
        elif path == "/cut-chunked":
            chunks = b"".join(b"%x\r\n%s\r\n" % (len(chunk), chunk) for chunk in CHUNKS)
            connection.sendall(head("200 OK", "Transfer-Encoding: chunked") + chunks)
            connection.close()
        elif path == "/not-modified":
            connection.sendall(head("304 Not Modified", "Content-Length: 2048", 'ETag: "page"'))
            connection.close()
        elif path == "/head-first":
            connection.sendall(head("200 OK", "Content-Length: 5"))
            time.sleep(LATE_BODY_SECONDS)
            connection.sendall(b"late\n")
            connection.close()
        else:
            connection.sendall(head("200 OK", "Content-Length: 3") + b"ok\n")
            connection.close()


def faulty_upstream() -> AbstractContextManager[str]:
    """Serve until the block ends; yields the upstream's base URL."""
    return http_server(_Handler)
