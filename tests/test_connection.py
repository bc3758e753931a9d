"""A response head goes out with the first piece of its body, in one send (gate.cycle holds it back)."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import uvicorn
from uvicorn.protocols.http.flow_control import FlowControl

from gate.cycle import GateCycle
from gate.limits import ClientLimits, GateServerConfig


def head(length: bytes = b"2") -> bytes:
    return b"HTTP/1.1 200 OK\r\ncontent-length: " + length + b"\r\n\r\n"


class RecordingTransport(asyncio.Transport):
    def __init__(self) -> None:
        super().__init__()
        self.sends: list[bytes] = []
        self.closed = False

    def write(self, data: Any) -> None:
        self.sends.append(bytes(data))

    def writelines(self, list_of_data: Any) -> None:
        self.sends.append(b"".join(bytes(data) for data in list_of_data))

    def close(self) -> None:
        self.closed = True

    def is_closing(self) -> bool:
        return self.closed


def new_cycle(
    transport: asyncio.Transport,
    scope: Any = None,
    keep_alive: bool = True,
    default_headers: list[tuple[bytes, bytes]] | None = None,
) -> GateCycle:
    return GateCycle(
        scope or {"type": "http", "method": "GET", "http_version": "1.1"},  # type: ignore[arg-type]
        transport,
        FlowControl(transport),
        asyncio.get_running_loop(),
        default_headers or [],
        expect_100_continue=False,
        keep_alive=keep_alive,
        on_response=None,
    )


def start(length: bytes = b"2") -> Any:
    return {"type": "http.response.start", "status": 200, "headers": [(b"content-length", length)]}


def body(data: bytes, more: bool = False) -> Any:
    return {"type": "http.response.body", "body": data, "more_body": more}


async def test_head_and_body_sent_in_one_turn_go_out_in_one_send() -> None:
    transport = RecordingTransport()
    cycle = new_cycle(transport)
    await cycle.send(start(b"3"))
    await cycle.send(body(b"ok", more=True))
    await cycle.send(body(b"!"))  # later writes go straight through
    assert transport.sends == [head(b"3") + b"ok", b"!"]


async def test_a_head_alone_goes_out_at_the_end_of_the_loop_turn() -> None:
    transport = RecordingTransport()
    cycle = new_cycle(transport)
    await cycle.send(start())
    assert transport.sends == []
    await asyncio.sleep(0)
    assert transport.sends == [head()]
    await cycle.send(body(b"ok"))
    assert transport.sends == [head(), b"ok"]


async def test_an_app_that_fails_after_its_head_sends_the_head_then_closes() -> None:
    async def failing_app(scope: Any, receive: Any, send: Any) -> None:
        await send(start())
        raise RuntimeError("upstream went away")

    transport = RecordingTransport()
    cycle = new_cycle(transport)
    await cycle.run_asgi(failing_app)
    assert transport.sends == [head()]
    assert transport.closed
    await asyncio.sleep(0)
    assert len(transport.sends) == 1


async def test_a_head_answer_is_written_at_once() -> None:
    transport = RecordingTransport()
    cycle = new_cycle(transport, {"type": "http", "method": "HEAD", "http_version": "1.1"})
    await cycle.send(start(b"2048"))
    assert transport.sends == [head(b"2048")]


async def test_an_idle_keep_alive_connection_closes_after_the_timeout_counted_from_its_last_response() -> None:
    """The keep-alive timer is armed once and moved on when it fires: requests spaced closer than the timeout keep
    the connection, whatever the time since the first; an idle one is closed."""

    async def app(scope: Any, receive: Any, send: Any) -> None:
        await send(start())
        await send(body(b"ok"))

    config = GateServerConfig(
        app,
        ClientLimits(keep_alive_timeout=1.0),
        host="127.0.0.1",
        port=0,
        lifespan="off",
        log_config=None,
        server_header=False,
        date_header=False,
    )
    server = uvicorn.Server(config)
    sockets = [config.bind_socket()]
    serving = asyncio.create_task(server.serve(sockets))
    try:
        while not server.started:
            await asyncio.sleep(0.01)
        reader, writer = await asyncio.open_connection("127.0.0.1", sockets[0].getsockname()[1])
        for _ in range(3):
            writer.write(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
            assert await asyncio.wait_for(reader.readexactly(len(head()) + 2), 5) == head() + b"ok"
            await asyncio.sleep(0.6)  # 1.8 s in all: past the timeout since the first response
        idle_from = time.monotonic()
        assert await asyncio.wait_for(reader.read(), 5) == b""  # closed by gate
        assert 0.2 < time.monotonic() - idle_from < 2.0
        writer.close()
    finally:
        server.should_exit = True
        await serving
