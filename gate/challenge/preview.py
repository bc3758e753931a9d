"""Open Graph passthrough: the challenge page carries the target page's og:* and twitter:* tags, so a link shared on
a chat app or the fediverse still previews while the page itself stays behind the challenge.

The tags are fetched from the upstream once per page, without the client's cookies or credentials (a preview must
never show what only a logged-in visitor sees), and kept in the store for an hour, failures included.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
from html.parser import HTMLParser

import aiohttp

from gate.proxy import Forwarder
from gate.store import Store, StoreError

log = logging.getLogger("gate.challenge")

CACHE_SECONDS = 3600
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
    def __init__(self, forwarder: Forwarder, store: Store) -> None:
        self.forwarder = forwarder
        self.store = store

    async def tags(self, host: str, target: str) -> list[tuple[str, str]]:
        key = "og:" + hashlib.sha256(f"{host}\0{target}".encode("utf-8", "surrogateescape")).hexdigest()[:32]
        try:
            cached = await self.store.get(key)
        except StoreError:
            return []
        if cached is not None:
            return [(name, content) for name, content in json.loads(cached)]
        tags = await self._fetch(host, target)
        with contextlib.suppress(StoreError):  # without the store, fetch again next time
            await self.store.set(key, json.dumps(tags).encode(), CACHE_SECONDS)
        return tags

    async def _fetch(self, host: str, target: str) -> list[tuple[str, str]]:
        headers = {"Host": host, "Accept": "text/html", "User-Agent": "gate (link preview passthrough)"}
        try:
            async with self.forwarder.session.get(
                self.forwarder.url(target),
                headers=headers,
                allow_redirects=False,
                timeout=aiohttp.ClientTimeout(total=FETCH_SECONDS),
            ) as response:
                if response.status != 200 or "html" not in response.headers.get("content-type", ""):
                    return []
                body = await response.content.read(MAX_BYTES)
        except (aiohttp.ClientError, TimeoutError) as error:
            log.info("no preview tags for %s: %r", target, error)
            return []
        return preview_tags(body.decode(response.charset or "utf-8", "replace"))
