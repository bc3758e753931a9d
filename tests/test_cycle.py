"""GateCycle writes what uvicorn's own cycle writes, for every kind of response head and body: compared byte for
byte with uvicorn's RequestResponseCycle on the same ASGI messages."""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from typing import Any

import pytest
from uvicorn.protocols.http.flow_control import FlowControl
from uvicorn.protocols.http.httptools_impl import RequestResponseCycle

from gate.cycle import GateCycle
from tests.test_connection import RecordingTransport, new_cycle

Headers = list[tuple[bytes, bytes]]
PAGE = b"<p>" + b"x" * 2000 + b"</p>"


@dataclass
class Outcome:
    wire: bytes
    closed: bool
    keep_alive: bool
    complete: bool
    error: str | None


async def exchange(
    cycle_class: type[RequestResponseCycle] | type[GateCycle],
    messages: list[dict[str, Any]],
    method: str = "GET",
    keep_alive: bool = True,
    default_headers: Headers | None = None,
) -> Outcome:
    transport = RecordingTransport()
    scope: Any = {"type": "http", "method": method, "http_version": "1.1"}
    cycle: RequestResponseCycle | GateCycle
    if cycle_class is GateCycle:
        cycle = new_cycle(transport, scope, keep_alive, default_headers or [])
    else:
        cycle = RequestResponseCycle(
            scope=scope,
            transport=transport,
            flow=FlowControl(transport),
            logger=logging.getLogger("test"),
            access_logger=logging.getLogger("test.access"),
            access_log=False,
            default_headers=default_headers or [],
            message_event=asyncio.Event(),
            expect_100_continue=False,
            keep_alive=keep_alive,
            on_response=lambda: None,
        )
    error = None
    try:
        for message in messages:
            await cycle.send(message)  # type: ignore[arg-type]
    except RuntimeError as raised:
        error = str(raised)
    except ValueError as raised:
        error = f"ValueError: {raised}"
    await asyncio.sleep(0)  # the end of the loop turn, when a head held back for its body goes out alone
    return Outcome(b"".join(transport.sends), transport.closed, cycle.keep_alive, cycle.response_complete, error)


def start(status: int = 200, headers: Headers | None = None) -> dict[str, Any]:
    return {"type": "http.response.start", "status": status, "headers": headers or []}


def body(data: bytes = b"", more: bool = False) -> dict[str, Any]:
    return {"type": "http.response.body", "body": data, "more_body": more}


FORWARDED = [
    (b"content-type", b"text/html"),
    (b"content-length", str(len(PAGE)).encode()),
    (b"etag", b'"6560-7d0"'),
    (b"content-usage", b"train-ai=n"),
    (b"link", b'</.well-known/tdmrep.json>; rel="tdm-policy"'),
]

CASES: dict[str, tuple[list[dict[str, Any]], dict[str, Any]]] = {
    "a forwarded page with its length": ([start(200, FORWARDED), body(PAGE)], {}),
    "a page in pieces": ([start(200, FORWARDED), body(PAGE[:100], True), body(PAGE[100:])], {}),
    "upper-case names": ([start(200, [(b"Content-Length", b"2"), (b"X-Thing", b"A")]), body(b"ok")], {}),
    "no framing: chunked by the server": (
        [start(200, [(b"content-type", b"text/plain")]), body(b"a", True), body()],
        {},
    ),
    "declared chunked": (
        [start(200, [(b"Transfer-Encoding", b"Chunked")]), body(b"abc", True), body(b"", True), body()],
        {},
    ),
    "a HEAD answer": ([start(200, [(b"content-length", b"2048")]), body()], {"method": "HEAD"}),
    "a HEAD answer without length": ([start(200), body()], {"method": "HEAD"}),
    "204": ([start(204), body()], {}),
    "304 with an etag": ([start(304, [(b"etag", b'"x"')]), body()], {}),
    "connection close from the app": (
        [start(200, [(b"content-length", b"0"), (b"Connection", b"Keep-Alive, Close")]), body()],
        {},
    ),
    "a client that asked to close": ([start(200, [(b"content-length", b"1")]), body(b"x")], {"keep_alive": False}),
    "default headers first": (
        [start(200, [(b"content-length", b"0")]), body()],
        {"default_headers": [(b"server", b"gate")]},
    ),
    "a status without a phrase": ([start(299, [(b"content-length", b"0")]), body()], {}),
    "a value with a tab": ([start(200, [(b"x-a", b"one\ttwo"), (b"content-length", b"0")]), body()], {}),
    "a value with a line break": ([start(200, [(b"x-a", b"one\r\nset-cookie: x=1")]), body()], {}),
    "a value with NUL": ([start(200, [(b"x-a", b"one\x00")]), body()], {}),
    "a name with a space": ([start(200, [(b"x a", b"1")]), body()], {}),
    "a name with a colon": ([start(200, [(b"x:a", b"1")]), body()], {}),
    "a body longer than its length": ([start(200, [(b"content-length", b"1")]), body(b"xy")], {}),
    "a body shorter than its length": ([start(200, [(b"content-length", b"3")]), body(b"xy")], {}),
    "a length that is not a number": ([start(200, [(b"content-length", b"two")]), body()], {}),
    "a body first": ([body(b"x")], {}),
    "a second start": ([start(200, [(b"content-length", b"0")]), start(200)], {}),
    "a message after the end": ([start(200, [(b"content-length", b"0")]), body(), body()], {}),
}


@pytest.mark.parametrize("case", CASES)
async def test_gate_writes_what_uvicorn_writes(case: str) -> None:
    messages, options = CASES[case]
    ours = await exchange(GateCycle, messages, **options)
    uvicorns = await exchange(RequestResponseCycle, messages, **options)
    assert ours == uvicorns


async def test_forbidden_bytes_anywhere_in_the_head_are_refused() -> None:
    """The one search over all values finds a line break in the last header as in the first."""
    headers = [(b"x-%d" % index, b"fine") for index in range(12)]
    for position in (0, 5, 11):
        bad = list(headers)
        bad[position] = (bad[position][0], b"fine\nset-cookie: stolen=1")
        outcome = await exchange(GateCycle, [start(200, bad), body()])
        assert outcome.error == "Invalid HTTP header value."
        assert outcome.wire == b""


async def test_a_forwarded_page_goes_out_whole() -> None:
    outcome = await exchange(GateCycle, [start(200, FORWARDED), body(PAGE)])
    head, _, rest = outcome.wire.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200 OK\r\ncontent-type: text/html\r\n")
    assert b"transfer-encoding" not in head
    assert rest == PAGE
    assert outcome.complete and outcome.keep_alive and not outcome.closed
