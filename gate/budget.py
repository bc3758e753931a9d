"""A sliding-window budget for work a client can make gate do for others (fetching a host's robots.txt, looking up an
address's reverse DNS): at most `limit` new ones per `period`, whatever the clients ask."""

from __future__ import annotations

import time
from collections import deque


class Budget:
    def __init__(self, limit: int, period: float = 60.0) -> None:
        self.limit = limit
        self.period = period
        self._spent: deque[float] = deque(maxlen=limit)

    def take(self) -> bool:
        """Spend one unit if the window has one left."""
        now = time.monotonic()
        while self._spent and now - self._spent[0] >= self.period:
            self._spent.popleft()
        if len(self._spent) >= self.limit:
            return False
        self._spent.append(now)
        return True
