"""Work done in batches: an async flush run a moment after the first call that needs it, once however many calls
come meanwhile (pass budgets and rate limits counted in-process, added to the shared store together)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable


class FlushLater:
    def __init__(self, delay: float, flush: Callable[[], Awaitable[None]]) -> None:
        self.delay = delay
        self.flush = flush
        self.scheduled = False
        self._running: set[asyncio.Future[None]] = set()  # referenced until done: the loop keeps weak references

    def schedule(self) -> None:
        if not self.scheduled:
            self.scheduled = True
            asyncio.get_running_loop().call_later(self.delay, self._start)

    def _start(self) -> None:
        self.scheduled = False
        task = asyncio.ensure_future(self.flush())
        self._running.add(task)
        task.add_done_callback(self._running.discard)
