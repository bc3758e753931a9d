"""Shared state: counters, spent challenges, bans. `open_store` picks the implementation from --store."""

from __future__ import annotations

from urllib.parse import parse_qs, urlsplit

from gate.store.base import Quota, Store, StoreError, StoreUnavailable, Verdict, Verdicts
from gate.store.fallback import FallbackStore, off_request_path
from gate.store.memory import MemoryStore
from gate.store.redis import RedisStore

__all__ = [
    "FallbackStore",
    "MemoryStore",
    "Quota",
    "RedisStore",
    "Store",
    "StoreError",
    "StoreUnavailable",
    "Verdict",
    "Verdicts",
    "off_request_path",
    "open_store",
]
DEFAULT_TIMEOUT = 0.025  # seconds a shared-store call may take before the in-process fallback answers


def memory_max_keys(url: str) -> int:
    """The key bound of a memory:// URL; ValueError with a readable message when it is not a positive integer."""
    values = parse_qs(urlsplit(url).query).get("max_keys")
    if not values:
        return MemoryStore.DEFAULT_MAX_KEYS
    try:
        max_keys = int(values[0])
    except ValueError:
        max_keys = 0
    if max_keys < 1:
        raise ValueError(f"{url!r}: max_keys must be a whole number of at least 1")
    return max_keys


def open_store(url: str, timeout: float = DEFAULT_TIMEOUT) -> Store:
    """The embedded store for memory://; a Redis behind a deadline and an in-process fallback for the others."""
    if urlsplit(url).scheme == "memory":
        return MemoryStore(max_keys=memory_max_keys(url))
    return FallbackStore(RedisStore.from_url(url), timeout)
