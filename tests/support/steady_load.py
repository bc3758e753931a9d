"""Steady load on a running gate from a few kinds of client at once, one thread each, for the fault tests: every
answer (or failed request) is kept with its time, so a test can see what each client got before, during and after
a fault."""

from __future__ import annotations

import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from types import TracebackType

import httpx


@dataclass(frozen=True)
class Client:
    path: str
    headers: Mapping[str, str]


@dataclass(frozen=True)
class Answer:
    at: float  # time.monotonic() when the answer (or the failure) came
    client: str
    status: int | None  # None: no HTTP answer at all
    error: str | None = None


class SteadyLoad:
    """Each client asks for its path again and again, on its own keep-alive connection, until the block ends."""

    def __init__(self, url: str, clients: Mapping[str, Client]) -> None:
        self.url = url
        self.clients = clients
        self._answers: list[Answer] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._run, args=(name,), daemon=True) for name in clients]

    def __enter__(self) -> SteadyLoad:
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, traceback: TracebackType | None
    ) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(10)

    def _run(self, name: str) -> None:
        client = self.clients[name]
        with httpx.Client(base_url=self.url, headers=dict(client.headers), timeout=5) as session:
            while not self._stop.is_set():
                try:
                    answer = Answer(time.monotonic(), name, session.get(client.path).status_code)
                except httpx.HTTPError as failure:
                    answer = Answer(time.monotonic(), name, None, repr(failure))
                with self._lock:
                    self._answers.append(answer)

    def answers(self, since: float = 0.0) -> list[Answer]:
        with self._lock:
            return [answer for answer in self._answers if answer.at >= since]

    def wait_for(self, count: int, since: float, timeout: float = 10.0) -> None:
        """Until every client has had `count` answers since `since`."""
        deadline = time.monotonic() + timeout
        while True:
            answered = [answer.client for answer in self.answers(since)]
            if all(answered.count(name) >= count for name in self.clients):
                return
            assert time.monotonic() < deadline, f"the load stalled: {len(answered)} answers in {timeout} s"
            time.sleep(0.05)

    def statuses(self, client: str, since: float = 0.0, until: float = float("inf")) -> set[int | None]:
        return {answer.status for answer in self.answers(since) if answer.client == client and answer.at < until}
