"""robots.txt as gate serves it: the upstream's own (fetched and cached per host) merged with the groups for the
owner's terms, and an RFC 9309 matcher over the result, to see which crawlers fetch what it disallows.

The upstream's copy is refreshed every ten minutes; redirects are followed (up to 5). A 4xx means it has none
(RFC 9309: everything allowed, so only gate's groups are served); a 5xx or no answer keeps the last good copy, and
before there is one, `Disallow: /` for everyone stands in (RFC 9309: an unreachable robots.txt disallows
everything), still with a 200. Hosts are the client's to choose, so gate fetches for at most a few new hosts a
minute, and parses in a thread, off the event loop.
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

from gate.budget import Budget
from gate.net import hostname
from gate.proxy import Forwarder

log = logging.getLogger("gate.terms")
REFRESH_SECONDS = 600.0
RETRY_SECONDS = 30.0  # after a failed fetch, the last good copy is served this long before the next try
FETCH_SECONDS = 5.0
MAX_BYTES = 500 * 1024  # RFC 9309: crawlers must read at least 500 KiB; gate reads no more
MAX_HOSTS = 64
NEW_HOSTS_PER_MINUTE = 10


UNREACHABLE = """\
# This site's own robots.txt cannot be read right now: everything is disallowed until it can (RFC 9309).
User-agent: *
Disallow: /
"""


@dataclass(frozen=True, slots=True)
class RobotsFile:
    text: str
    parser: Protego
    stand_in: bool = False  # the upstream's file was unreachable: UNREACHABLE stands in for it

    def allows(self, agent: str, url: str) -> bool:
        """May `agent` fetch `url`? A URL the client's Host header made unparseable ("[", "a]") matches nothing."""
        try:
            return bool(self.parser.can_fetch(url, agent))
        except ValueError:
            return True


@dataclass(slots=True)
class _Entry:
    upstream: str | None  # None: never fetched successfully
    robots: RobotsFile
    fresh_until: float
    merged_with: object  # the terms the file was merged with: another object means the rules were reloaded


class RobotsCache:
    """Per host: the upstream's robots.txt and gate's merged file. `merge` builds the served text from the
    upstream's; `terms` says which terms are in force (a reload re-merges, without fetching again)."""

    def __init__(self, forwarder: Forwarder, merge: Callable[[str], str], terms: Callable[[], object]) -> None:
        self.forwarder = forwarder
        self.merge = merge  # upstream text -> served text
        self.terms = terms
        self._entries: OrderedDict[str, _Entry] = OrderedDict()
        self._fetching: dict[str, asyncio.Task[_Entry]] = {}
        self._new_hosts = Budget(NEW_HOSTS_PER_MINUTE)

    def cached(self, host: str) -> RobotsFile | None:
        """The merged file for host if one was built (never waits; starts a refresh when it is due)."""
        key = hostname(host)
        entry = self._entries.get(key)
        if entry is None or entry.fresh_until < time.monotonic() or entry.merged_with is not self.terms():
            self._refresh(key)
        return entry.robots if entry is not None else None

    async def get(self, host: str) -> RobotsFile:
        key = hostname(host)
        entry = self._entries.get(key)
        if entry is not None and entry.fresh_until >= time.monotonic() and entry.merged_with is self.terms():
            return entry.robots
        task = self._refresh(key)
        if task is None:  # over the new-host budget: gate's own groups only, not cached
            return await self._build("")
        return (await asyncio.shield(task)).robots  # a client that goes away does not cancel the others' fetch

    def _refresh(self, key: str) -> asyncio.Task[_Entry] | None:
        task = self._fetching.get(key)
        if task is not None:
            return task
        if key not in self._entries and not self._new_hosts.take():
            return None
        task = asyncio.get_running_loop().create_task(self._fetch(key))
        self._fetching[key] = task
        task.add_done_callback(lambda _: self._fetching.pop(key, None))
        return task

    async def _fetch(self, key: str) -> _Entry:
        previous = self._entries.get(key)
        if previous is not None and previous.fresh_until >= time.monotonic():
            upstream, fresh_for = previous.upstream, previous.fresh_until - time.monotonic()  # re-merge only
        else:
            upstream, fresh_for = await self._download(key, previous.upstream if previous else None)
        terms = self.terms()
        entry = _Entry(upstream, await self._build(upstream), time.monotonic() + fresh_for, terms)
        self._entries[key] = entry
        self._entries.move_to_end(key)
        while len(self._entries) > MAX_HOSTS:
            self._entries.popitem(last=False)
        return entry

    async def _download(self, host: str, last_good: str | None) -> tuple[str | None, float]:
        """The upstream's robots.txt (or the last good copy) and how long it stays fresh."""
        headers = {
            "Host": self.forwarder.host_override or host,
            "User-Agent": "gate (robots.txt merge)",
            "Accept": "text/plain",
        }
        try:
            async with self.forwarder.session.get(
                self.forwarder.url("/robots.txt"),
                headers=headers,
                allow_redirects=True,
                max_redirects=5,
                timeout=aiohttp.ClientTimeout(total=FETCH_SECONDS),
            ) as response:
                if response.status == 200:
                    return await read_text(response.content), REFRESH_SECONDS
                if 400 <= response.status < 500:  # no robots.txt upstream: it allows everything
                    return "", REFRESH_SECONDS
                log.warning("upstream robots.txt for %s: HTTP %d; serving the last good copy", host, response.status)
        except (aiohttp.ClientError, TimeoutError) as error:
            log.warning("upstream robots.txt for %s unavailable (%r): serving the last good copy", host, error)
        return last_good, RETRY_SECONDS

    async def _build(self, upstream: str | None) -> RobotsFile:
        text = self.merge(UNREACHABLE if upstream is None else upstream)
        return RobotsFile(text, await asyncio.to_thread(Protego.parse, text), stand_in=upstream is None)


async def read_text(content: aiohttp.StreamReader) -> str:
    """At most MAX_BYTES of a body, decoded (a BOM dropped); a line cut at the limit is left out."""
    body = bytearray()
    async for chunk in content.iter_chunked(64 * 1024):
        body += chunk
        if len(body) >= MAX_BYTES:
            del body[MAX_BYTES:]
            del body[body.rfind(b"\n") + 1 :]
            break
    return bytes(body).decode("utf-8-sig", "replace")
