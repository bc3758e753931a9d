"""The store protocol every implementation passes the same conformance suite for (tests/store/).

Every key has a time to live: nothing a client causes can grow the store forever.
"""

from __future__ import annotations

from typing import Protocol


class StoreError(Exception):
    """The store could not answer (unreachable, timed out, refused)."""


class Store(Protocol):
    async def get(self, key: str) -> bytes | None:
        """The value, or None when absent or expired."""

    async def set(self, key: str, value: bytes, ttl: float, *, only_if_absent: bool = False) -> bool:
        """Store value for ttl seconds. With only_if_absent, an existing key is left alone and False returned."""

    async def incr(self, key: str, ttl: float, amount: int = 1) -> int:
        """Add amount to a counter and return the new value; a new counter lives ttl seconds from now.

        Raises StoreError when the key holds something that is not a counter."""

    async def delete(self, key: str) -> bool:
        """Remove a key; True when it existed."""

    async def ttl(self, key: str) -> float | None:
        """Seconds left to live, or None when the key is absent."""

    async def ping(self) -> None:
        """Raise StoreError when the store is not reachable."""

    async def close(self) -> None: ...
