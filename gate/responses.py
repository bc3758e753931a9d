"""Plain-ASGI responses gate sends itself on the per-request path (error pages), without framework objects."""

from __future__ import annotations

import html
from collections.abc import Iterable
from dataclasses import dataclass

from gate.asgi import Send


# Its own __init__ (init=False): mypyc compiles that one, not the one dataclass generates (docs/architecture.md).
@dataclass(slots=True, init=False)
class Outcome:
    """What a response step did, for the log line and metrics."""

    status: int
    upstream_seconds: float | None = None  # time to the upstream's response headers, when it was asked
    error: str | None = None  # upstream failure kind: connect, timeout, protocol, aborted
    passed: bool = False  # a challenged request let through by its pass token
    consented: bool = False  # a request answered with the terms let through by its consent token

    def __init__(
        self,
        status: int,
        upstream_seconds: float | None = None,
        error: str | None = None,
        passed: bool = False,
        consented: bool = False,
    ) -> None:
        self.status = status
        self.upstream_seconds = upstream_seconds
        self.error = error
        self.passed = passed
        self.consented = consented


PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>{status} {title}</title>
<style>body{{font:16px/1.5 system-ui,sans-serif;max-width:36rem;margin:12vh auto;padding:0 1rem;color:#222}}
h1{{font-size:1.4rem}} small{{color:#777}}</style></head>
<body><h1>{title}</h1><p>{message}</p><p><small>{status} &middot; gate</small></p></body></html>
"""


def render_page(status: int, title: str, message: str) -> bytes:
    return PAGE.format(status=status, title=html.escape(title), message=html.escape(message)).encode()


async def send_html(send: Send, status: int, body: bytes, headers: Iterable[tuple[bytes, bytes]] = ()) -> None:
    """An HTML response in two ASGI messages, no framework objects."""
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"text/html; charset=utf-8"),
                (b"content-length", str(len(body)).encode()),
                *headers,
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


async def send_page(
    send: Send, status: int, title: str, message: str, headers: Iterable[tuple[bytes, bytes]] = ()
) -> None:
    await send_html(send, status, render_page(status, title, message), [(b"cache-control", b"no-store"), *headers])
