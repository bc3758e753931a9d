"""Work done in batches: a flush run a moment after the first call that needs it, once however many calls come
meanwhile (pass budgets and rate limits counted in-process and added to the shared store together, per-request
metrics, access log lines). An async flush runs as a task; a plain one runs in the timer's callback."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable


class FlushLater:
    def __init__(self, delay: float, flush: Callable[[], Awaitable[None] | None]) -> None:
        self.delay = delay
        self.flush = flush
        self.scheduled = False
        self._running: set[asyncio.Future[None]] = set()  # referenced until done: the loop keeps weak references

    def schedule(self) -> None:
        if not self.scheduled:
            asyncio.get_running_loop().call_later(self.delay, self._start)  # raises RuntimeError outside a loop
            self.scheduled = True

    def _start(self) -> None:
        self.scheduled = False
        flushing = self.flush()
        if flushing is not None:
            task = asyncio.ensure_future(flushing)
            self._running.add(task)
            task.add_done_callback(self._running.discard)
