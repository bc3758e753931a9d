"""Shared state: counters, spent challenges, bans. `open_store` picks the implementation from --store."""

from __future__ import annotations

from urllib.parse import parse_qs, urlsplit

from gate.store.base import Store, StoreError
from gate.store.memory import MemoryStore
from gate.store.redis import RedisStore

__all__ = ["MemoryStore", "RedisStore", "Store", "StoreError", "open_store"]


def open_store(url: str) -> Store:
    parts = urlsplit(url)
    if parts.scheme == "memory":
        options = parse_qs(parts.query)
        max_keys = int(options["max_keys"][0]) if "max_keys" in options else MemoryStore.DEFAULT_MAX_KEYS
        return MemoryStore(max_keys=max_keys)
    return RedisStore.from_url(url)
