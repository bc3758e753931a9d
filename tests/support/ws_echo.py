"""A WebSocket echo server (run as `python -m tests.support.ws_echo PORT`), placed behind nginx in the tests.

It answers each message with the same message, and a text message "cookie?" with the Cookie header it saw.
"""

from __future__ import annotations

import asyncio
import sys

from websockets.asyncio.server import ServerConnection, serve


async def echo(connection: ServerConnection) -> None:
    async for message in connection:
        if message == "cookie?":
            await connection.send(connection.request.headers.get("X-Seen-Cookie", "") if connection.request else "")
        else:
            await connection.send(message)


async def main(port: int) -> None:
    async with serve(echo, "127.0.0.1", port, subprotocols=["chat", "echo"]) as server:  # type: ignore[list-item]
        await server.serve_forever()


if __name__ == "__main__":
    asyncio.run(main(int(sys.argv[1])))
