"""The upstream's robots.txt as gate reads it: whole (not just the first chunk), without a BOM, and in its place a
disallow-everything stand-in while it cannot be read at all."""

from __future__ import annotations

import asyncio

from aiohttp import StreamReader
from aiohttp.base_protocol import BaseProtocol
from protego import Protego

from gate.config import parse_upstream
from gate.proxy import Forwarder
from gate.terms.robots import MAX_BYTES, RobotsCache, read_text
from tests.support.ports import free_port


def stream(*chunks: bytes) -> StreamReader:
    reader = StreamReader(
        BaseProtocol(asyncio.get_running_loop()), 2**22, loop=asyncio.get_running_loop()
    )  # never pauses
    for chunk in chunks:
        reader.feed_data(chunk)
    reader.feed_eof()
    return reader


async def test_a_long_robots_txt_is_read_whole_up_to_the_limit_and_never_cut_mid_line() -> None:
    lines = [f"Disallow: /section-{number}/\n".encode() for number in range(40_000)]  # about 1 MB
    text = await read_text(stream(*lines))
    assert text.startswith("Disallow: /section-0/\n")
    assert MAX_BYTES - 100 < len(text) <= MAX_BYTES
    assert text.endswith("/\n")  # the line cut at the limit is left out, never half of it


async def test_a_byte_order_mark_is_dropped() -> None:
    text = await read_text(stream(b"\xef\xbb\xbfUser-agent: *\r\n", b"Disallow: /secret/\r\n"))
    assert text.startswith("User-agent: *")
    assert not Protego.parse(text).can_fetch("https://blog.example/secret/x", "SomeBot")


async def test_an_unreachable_robots_txt_disallows_everything_until_it_is_read() -> None:
    forwarder = Forwarder(parse_upstream(f"http://127.0.0.1:{free_port()}"), True, 1.0, 1.0)
    await forwarder.start()
    try:
        robots = await RobotsCache(forwarder, lambda upstream: upstream, lambda: None).get("blog.example")
    finally:
        await forwarder.close()
    assert robots.stand_in
    assert not robots.allows("Googlebot", "https://blog.example/page.html")
