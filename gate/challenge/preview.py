"""Open Graph passthrough: the challenge page carries the target page's og:* and twitter:* tags, so a link shared on
a chat app or the fediverse still previews while the page itself stays behind the challenge.

The tags are fetched from the upstream once per page, without the client's cookies or credentials (a preview must
never show what only a logged-in visitor sees), and kept for an hour, failures included.
"""

from __future__ import annotations

import asyncio
import codecs
import logging
import time
from collections import OrderedDict
from html.parser import HTMLParser

import aiohttp

from gate.facts import Facts
from gate.proxy import Forwarder

log = logging.getLogger("gate.challenge")

CACHE_SECONDS = 3600
CACHE_ENTRIES = 4096
FETCHES_AT_ONCE = 4
FETCH_SECONDS = 2.0
MAX_BYTES = 256 * 1024
MAX_TAGS = 24
MAX_CONTENT = 600
PREFIXES = ("og:", "twitter:", "article:")


class _MetaTags(HTMLParser):
    """Collects <meta property|name="og:…" content="…"> until the head ends."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: list[tuple[str, str]] = []
        self.done = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "body":
            self.done = True
        if tag != "meta" or self.done or len(self.tags) >= MAX_TAGS:
            return
        values = dict(attrs)
        name = (values.get("property") or values.get("name") or "").strip()
        content = values.get("content")
        if content is not None and name.lower().startswith(PREFIXES) and len(name) <= 64:
            self.tags.append((name, content[:MAX_CONTENT]))

    def handle_endtag(self, tag: str) -> None:
        if tag == "head":
            self.done = True


def preview_tags(html: str) -> list[tuple[str, str]]:
    parser = _MetaTags()
    parser.feed(html)
    return parser.tags


class PreviewCache:
    """Preview tags per page, fetched at most FETCHES_AT_ONCE at a time and kept in a bounded in-process cache.

    Not in the shared store: clients choose the paths, and their previews must never crowd out the keys that keep
    challenges spent and budgets counted. A page is its path without the query, so varying a query string neither
    multiplies fetches nor fills the cache.
    """

    def __init__(self, forwarder: Forwarder) -> None:
        self.forwarder = forwarder
        self._cache: OrderedDict[str, tuple[float, list[tuple[str, str]]]] = OrderedDict()
        self._fetching = asyncio.Semaphore(FETCHES_AT_ONCE)

    async def tags(self, facts: Facts, target: str) -> list[tuple[str, str]]:
        host = self.forwarder.host_override or facts.host
        path = target.split("?", 1)[0]
        key = f"{host}\0{path}"
        now = time.monotonic()
        cached = self._cache.get(key)
        if cached is not None and cached[0] > now:
            self._cache.move_to_end(key)
            return cached[1]
        if self._fetching.locked():
            return []  # the upstream is busy enough: this page goes without its preview
        async with self._fetching:
            tags = await self._fetch(host, path)
        self._cache[key] = (now + CACHE_SECONDS, tags)
        while len(self._cache) > CACHE_ENTRIES:
            self._cache.popitem(last=False)
        return tags

    async def _fetch(self, host: str, path: str) -> list[tuple[str, str]]:
        headers = {"Host": host, "Accept": "text/html", "User-Agent": "gate (link preview passthrough)"}
        try:
            async with self.forwarder.session.get(
                self.forwarder.url(path),
                headers=headers,
                allow_redirects=False,
                timeout=aiohttp.ClientTimeout(total=FETCH_SECONDS),
            ) as response:
                if response.status != 200 or "html" not in response.headers.get("content-type", ""):
                    return []
                body = bytearray()
                while len(body) < MAX_BYTES and (chunk := await response.content.read(MAX_BYTES - len(body))):
                    body += chunk
                charset = response.charset or "utf-8"
        except (aiohttp.ClientError, TimeoutError) as error:
            log.info("no preview tags for %s: %r", path, error)
            return []
        try:
            codecs.lookup(charset)
        except LookupError:  # an upstream's made-up charset must not break the challenge page
            charset = "utf-8"
        return preview_tags(bytes(body).decode(charset, "replace"))
