"""HeadHeldBack: a response head goes out with the first piece of the body, in one send."""

from __future__ import annotations

import asyncio
from typing import Any

from gate.connection import HeadHeldBack


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


async def test_head_and_body_written_in_one_turn_go_out_in_one_send() -> None:
    transport = RecordingTransport()
    held = HeadHeldBack(transport, asyncio.get_running_loop())
    held.write(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\n")
    held.write(b"ok")
    held.write(b"")  # later writes go straight through
    assert transport.sends == [b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok", b""]


async def test_a_head_alone_goes_out_at_the_end_of_the_loop_turn() -> None:
    transport = RecordingTransport()
    held = HeadHeldBack(transport, asyncio.get_running_loop())
    held.write(b"HTTP/1.1 200 OK\r\n\r\n")
    assert transport.sends == []
    await asyncio.sleep(0)
    assert transport.sends == [b"HTTP/1.1 200 OK\r\n\r\n"]
    held.write(b"body")
    assert transport.sends == [b"HTTP/1.1 200 OK\r\n\r\n", b"body"]


async def test_closing_sends_a_held_head_first() -> None:
    transport = RecordingTransport()
    held = HeadHeldBack(transport, asyncio.get_running_loop())
    held.write(b"HTTP/1.1 500 Internal Server Error\r\n\r\n")
    held.close()
    assert transport.sends == [b"HTTP/1.1 500 Internal Server Error\r\n\r\n"]
    assert transport.closed
    await asyncio.sleep(0)
    assert len(transport.sends) == 1
