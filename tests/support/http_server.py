"""A throwaway HTTP server on a free loopback port, in a thread: for pages a test serves itself."""

from __future__ import annotations

import socketserver
import ssl
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer


@contextmanager
def http_server(
    handler: Callable[..., socketserver.BaseRequestHandler], tls: ssl.SSLContext | None = None
) -> Iterator[str]:
    """Serve with `handler` (an HTTP handler, or a raw one that writes bytes itself) until the block ends, over TLS
    with a server context; yields the server's base URL."""
    server: ThreadingHTTPServer = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    if tls is not None:
        server.socket = tls.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"{'https' if tls else 'http'}://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


class QuietFiles(SimpleHTTPRequestHandler):
    """Files from a directory (pass `directory=`), without a log line per request."""

    def log_message(self, format: str, *args: object) -> None:
        return None
