"""robots.txt as gate serves it: the upstream's own (fetched and cached per host) merged with the groups for the
owner's terms, and an RFC 9309 matcher over the result, to see which crawlers fetch what it disallows.

The upstream's copy is refreshed every ten minutes. A 4xx means it has none (RFC 9309: everything allowed, so
only gate's groups are served); a 5xx or no answer keeps the last good copy (an empty one before the first).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

import aiohttp
from protego import Protego

from gate.proxy import Forwarder

log = logging.getLogger("gate.terms")
REFRESH_SECONDS = 600.0
RETRY_SECONDS = 30.0  # after a failed fetch, the last good copy is served this long before the next try
FETCH_SECONDS = 5.0
MAX_BYTES = 500 * 1024  # RFC 9309: crawlers must read at least 500 KiB; gate reads no more
MAX_HOSTS = 64


@dataclass(frozen=True, slots=True)
class RobotsFile:
    text: str
    parser: Protego

    def allows(self, agent: str, url: str) -> bool:
        return bool(self.parser.can_fetch(url, agent))


@dataclass(slots=True)
class _Entry:
    upstream: str
    robots: RobotsFile
    fresh_until: float


class RobotsCache:
    """Per host: the upstream's robots.txt and gate's merged file. `merge` builds the served text from the
    upstream's (it reads the current terms each time, so a rules reload shows at the next refresh)."""

    def __init__(self, forwarder: Forwarder, merge: Callable[[str], str]) -> None:
        self.forwarder = forwarder
        self.merge = merge  # upstream text -> served text
        self._entries: OrderedDict[str, _Entry] = OrderedDict()
        self._fetching: dict[str, asyncio.Task[_Entry]] = {}

    def cached(self, host: str) -> RobotsFile | None:
        """The merged file for host if one was built (never waits; starts a refresh when it is due)."""
        entry = self._entries.get(host)
        if entry is None or entry.fresh_until < time.monotonic():
            self._refresh(host)
        return entry.robots if entry is not None else None

    async def get(self, host: str) -> RobotsFile:
        entry = self._entries.get(host)
        if entry is not None and entry.fresh_until >= time.monotonic():
            return entry.robots
        return (await self._refresh(host)).robots

    def _refresh(self, host: str) -> asyncio.Task[_Entry]:
        task = self._fetching.get(host)
        if task is None:
            task = asyncio.get_running_loop().create_task(self._fetch(host))
            self._fetching[host] = task
            task.add_done_callback(lambda _: self._fetching.pop(host, None))
        return task

    async def _fetch(self, host: str) -> _Entry:
        previous = self._entries.get(host)
        upstream = previous.upstream if previous else ""
        fresh_for = RETRY_SECONDS
        headers = {"Host": host, "User-Agent": "gate (robots.txt merge)", "Accept": "text/plain"}
        try:
            async with self.forwarder.session.get(
                self.forwarder.url("/robots.txt"),
                headers=headers,
                allow_redirects=False,
                timeout=aiohttp.ClientTimeout(total=FETCH_SECONDS),
            ) as response:
                if response.status == 200:
                    upstream = (await response.content.read(MAX_BYTES)).decode("utf-8", "replace")
                    fresh_for = REFRESH_SECONDS
                elif 400 <= response.status < 500:  # no robots.txt upstream: it allows everything
                    upstream, fresh_for = "", REFRESH_SECONDS
                else:
                    log.warning(
                        "upstream robots.txt for %s answered %d: serving the last good copy", host, response.status
                    )
        except (aiohttp.ClientError, TimeoutError) as error:
            log.warning("upstream robots.txt for %s unavailable (%r): serving the last good copy", host, error)
        text = self.merge(upstream)
        entry = _Entry(upstream, RobotsFile(text, Protego.parse(text)), time.monotonic() + fresh_for)
        self._entries[host] = entry
        self._entries.move_to_end(host)
        while len(self._entries) > MAX_HOSTS:
            self._entries.popitem(last=False)
        return entry
