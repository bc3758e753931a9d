"""gate's upstream client against small scripted servers on loopback: connection reuse, a stale pooled connection
retried, responses without bodies, chunked with trailers, interim 100 Continue, close-delimited bodies, cut bodies,
uploads with either framing, the pool's bound and idle expiry, a unix socket and TLS."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from gate.config import Upstream, parse_upstream
from gate.upstream import (
    StaleConnection,
    UpstreamBodyError,
    UpstreamClient,
    UpstreamError,
    UpstreamResponse,
    UpstreamTimeout,
)
from tests.support.ports import free_port
from tests.support.tls import self_signed_certificate

PAGE = b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello"
HOST = [(b"host", b"upstream.test")]


@dataclass
class Answer:
    raw: bytes
    then: str = "keep"  # keep the connection, or "close" it once answered
    delay: float = 0.0


ANSWERS = {
    "/page": Answer(PAGE),
    "/head": Answer(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\nContent-Type: text/plain\r\n\r\n"),
    "/204": Answer(b"HTTP/1.1 204 No Content\r\n\r\n"),
    "/304": Answer(b'HTTP/1.1 304 Not Modified\r\nETag: "x"\r\n\r\n'),
    "/chunked": Answer(
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nTrailer: X-Sum\r\n\r\n"
        b"5\r\nhello\r\n6\r\n world\r\n0\r\nX-Sum: 42\r\n\r\n"
    ),
    "/continue": Answer(b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"),
    "/unframed": Answer(b"HTTP/1.1 200 OK\r\n\r\n" + b"u" * 5000, then="close"),
    "/short": Answer(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nonly this", then="close"),
    "/huge-head": Answer(b"HTTP/1.1 200 OK\r\nX-Big: " + b"a" * 70_000 + b"\r\nContent-Length: 0\r\n\r\n"),
    "/slow": Answer(PAGE, delay=0.2),
    "/huge-trailer": Answer(
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\n0\r\nX-Big: " + b"t" * 300_000
    ),
    # An upstream that sends more than its framing says: the rest must never be read as the next client's answer.
    "/overlong": Answer(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nhiHTTP/1.1 302 Found\r\nSet-Cookie: s=evil; x="),
    "/late": Answer(PAGE, delay=1.0),
}


@dataclass
class ScriptedUpstream:
    """Answers each request with the raw bytes scripted for its path. With `one_answer_per_connection`, a second
    request on a connection is read and the connection closed unanswered, as by a server whose idle timeout fired."""

    one_answer_per_connection: bool = False
    accepts: int = 0
    closed: int = 0
    requests: list[tuple[bytes, bytes]] = field(default_factory=list)
    handlers: set[asyncio.Task[None]] = field(default_factory=set)

    async def serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self.handlers.add(task)
        self.accepts += 1
        answered = 0
        try:
            while True:
                try:
                    head = await reader.readuntil(b"\r\n\r\n")
                except (asyncio.IncompleteReadError, ConnectionError):
                    return
                self.requests.append((head, await read_body(reader, head)))
                if self.one_answer_per_connection and answered:
                    return
                answer = ANSWERS[head.split(b" ", 2)[1].decode()]
                await asyncio.sleep(answer.delay)
                writer.write(answer.raw)
                await writer.drain()
                answered += 1
                if answer.then == "close":
                    return
        finally:
            self.closed += 1
            writer.close()
            with contextlib.suppress(ConnectionError):
                await writer.wait_closed()


async def read_body(reader: asyncio.StreamReader, head: bytes) -> bytes:
    lines = head.lower().split(b"\r\n")
    if b"transfer-encoding: chunked" in lines:
        body = b""
        while True:
            size = int((await reader.readuntil(b"\r\n")).strip(), 16)
            body += (await reader.readexactly(size + 2))[:-2]
            if size == 0:
                return body
    for line in lines:
        if line.startswith(b"content-length:"):
            return await reader.readexactly(int(line.split(b":")[1]))
    return b""


@contextlib.asynccontextmanager
async def scripted(
    one_answer_per_connection: bool = False,
    unix_path: Path | None = None,
    tls_dir: Path | None = None,
    **client: float,
) -> AsyncIterator[tuple[ScriptedUpstream, UpstreamClient]]:
    """A scripted server and a client for it (both closed afterwards)."""
    upstream = ScriptedUpstream(one_answer_per_connection)
    context = None
    if unix_path is not None:
        server = await asyncio.start_unix_server(upstream.serve, str(unix_path))
        target: Upstream = parse_upstream(f"unix:{unix_path}")
    else:
        port = free_port()
        if tls_dir is not None:
            certificate = self_signed_certificate(tls_dir)
            server_context, context = certificate.server_context(), certificate.client_context()
            server = await asyncio.start_server(upstream.serve, "127.0.0.1", port, ssl=server_context)
        else:
            server = await asyncio.start_server(upstream.serve, "127.0.0.1", port)
        target = parse_upstream(f"{'https' if tls_dir else 'http'}://127.0.0.1:{port}")
    settings = {"connect_timeout": 2.0, "read_timeout": 2.0, **client}
    forwarding = UpstreamClient(target, ssl_context=context, **settings)  # type: ignore[arg-type]
    try:
        yield upstream, forwarding
    finally:
        await forwarding.close()
        server.close()
        if upstream.handlers:
            await asyncio.wait(upstream.handlers, timeout=2)
        await server.wait_closed()


async def fetch(client: UpstreamClient, path: str, method: str = "GET") -> tuple[UpstreamResponse, bytes]:
    """The whole response (released afterwards)."""
    response = await client.request(method, path, HOST)
    body = b""
    try:
        while not response.finished:
            body += await response.read()
    finally:
        response.release()
    return response, body


def body_of(*pieces: bytes) -> Callable[[], Awaitable[tuple[bytes, bool]]]:
    """A request body source handing out `pieces`, the last one marked as the end."""
    queue = list(pieces)

    async def next_piece() -> tuple[bytes, bool]:
        piece = queue.pop(0)
        return piece, bool(queue)

    return next_piece


async def test_sequential_requests_share_one_connection() -> None:
    async with scripted() as (upstream, client):
        for _ in range(3):
            response, body = await fetch(client, "/page")
            assert (response.status, body) == (200, b"hello")
        assert upstream.accepts == 1
        assert upstream.requests[0][0].startswith(b"GET /page HTTP/1.1\r\nhost: upstream.test\r\n")


async def test_a_pooled_connection_the_server_closed_is_retried_on_a_fresh_one() -> None:
    async with scripted(one_answer_per_connection=True) as (upstream, client):
        assert (await fetch(client, "/page"))[1] == b"hello"
        assert (await fetch(client, "/page"))[1] == b"hello"  # the first connection is dropped unanswered
        assert upstream.accepts == 2
        assert len(upstream.requests) == 3


async def test_a_request_with_a_body_is_not_sent_twice() -> None:
    async with scripted(one_answer_per_connection=True) as (upstream, client):
        await fetch(client, "/page")
        with pytest.raises(StaleConnection):
            await client.request("POST", "/page", [*HOST, (b"content-length", b"3")], body_of(b"abc"))
        assert upstream.accepts == 1


async def test_a_bodiless_request_that_changes_something_is_not_sent_twice() -> None:
    async with scripted(one_answer_per_connection=True) as (upstream, client):
        await fetch(client, "/page")
        with pytest.raises(StaleConnection):  # the upstream may have acted on it before closing
            await client.request("POST", "/page", [*HOST, (b"content-length", b"0")])
        assert upstream.accepts == 1


async def test_bytes_past_a_responses_end_never_reach_the_next_request() -> None:
    async with scripted() as (upstream, client):
        assert (await fetch(client, "/overlong"))[1] == b"hi"
        response, body = await fetch(client, "/page")  # on a fresh connection, not the polluted one
        assert (response.status, body) == (200, b"hello")
        assert upstream.accepts == 2


@pytest.mark.parametrize(
    ("method", "path", "status"), [("HEAD", "/head", 200), ("GET", "/204", 204), ("GET", "/304", 304)]
)
async def test_responses_without_a_body_leave_the_connection_reusable(method: str, path: str, status: int) -> None:
    async with scripted() as (upstream, client):
        response, body = await fetch(client, path, method)
        assert (response.status, body) == (status, b"")
        assert (await fetch(client, "/page"))[1] == b"hello"
        assert upstream.accepts == 1


async def test_a_chunked_response_with_trailers() -> None:
    async with scripted() as (upstream, client):
        response, body = await fetch(client, "/chunked")
        assert body == b"hello world"
        assert (b"Trailer", b"X-Sum") in response.headers and all(name != b"X-Sum" for name, _ in response.headers)
        assert (await fetch(client, "/page"))[1] == b"hello"
        assert upstream.accepts == 1


async def test_an_interim_100_continue_is_skipped() -> None:
    async with scripted() as (_, client):
        response, body = await fetch(client, "/continue")
        assert (response.status, body) == (200, b"ok")


async def test_a_close_delimited_body_ends_with_the_close_and_is_not_pooled() -> None:
    async with scripted() as (_, client):
        _, body = await fetch(client, "/unframed")
        assert body == b"u" * 5000
        assert len(client.pool) == 0


async def test_a_body_shorter_than_its_content_length_is_an_error() -> None:
    async with scripted() as (_, client):
        with pytest.raises(UpstreamBodyError):
            await fetch(client, "/short")


async def test_an_endless_trailer_is_cut_instead_of_buffered() -> None:
    async with scripted() as (_, client):
        started = time.monotonic()
        with pytest.raises(UpstreamBodyError):
            await fetch(client, "/huge-trailer")
        assert time.monotonic() - started < 1.0  # cut as the bytes come, not after the 2 s read timeout


async def test_an_oversized_response_head_is_a_protocol_error() -> None:
    async with scripted() as (_, client):
        with pytest.raises(UpstreamError) as raised:
            await fetch(client, "/huge-head")
        assert raised.value.kind == "protocol"


async def test_no_response_head_in_time_is_a_timeout() -> None:
    async with scripted(read_timeout=0.3) as (_, client):
        with pytest.raises(UpstreamTimeout):
            await fetch(client, "/late")


@pytest.mark.parametrize("chunked", [False, True])
async def test_request_bodies_keep_their_framing(chunked: bool) -> None:
    async with scripted() as (upstream, client):
        headers = HOST if chunked else [*HOST, (b"content-length", b"11")]
        response = await client.request("PUT", "/page", headers, body_of(b"hello", b" ", b"world"), chunked)
        response.release()
        head, body = upstream.requests[0]
        assert body == b"hello world"
        assert (b"transfer-encoding: chunked" in head) is chunked
        assert (b"content-length: 11" in head) is not chunked


async def test_the_pool_keeps_at_most_max_idle_connections() -> None:
    async with scripted(max_idle=2) as (upstream, client):
        await asyncio.gather(*(fetch(client, "/slow") for _ in range(4)))
        assert upstream.accepts == 4
        assert len(client.pool) == 2
        await asyncio.sleep(0.05)
        assert upstream.closed == 2


async def test_an_idle_connection_is_closed_after_the_idle_timeout() -> None:
    async with scripted(idle_timeout=0.2) as (upstream, client):
        await fetch(client, "/page")
        assert len(client.pool) == 1
        await asyncio.sleep(0.4)
        assert len(client.pool) == 0 and upstream.closed == 1
        assert (await fetch(client, "/page"))[1] == b"hello"
        assert upstream.accepts == 2


async def test_a_unix_socket_upstream(tmp_path: Path) -> None:
    async with scripted(unix_path=tmp_path / "app.sock") as (upstream, client):
        assert (await fetch(client, "/page"))[1] == b"hello"
        assert (await fetch(client, "/chunked"))[1] == b"hello world"
        assert upstream.accepts == 1


async def test_an_https_upstream(tmp_path: Path) -> None:
    async with scripted(tls_dir=tmp_path) as (upstream, client):
        assert (await fetch(client, "/page"))[1] == b"hello"
        assert (await fetch(client, "/page"))[1] == b"hello"
        assert upstream.accepts == 1
