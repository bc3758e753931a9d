"""User-Agent -> agent class.

A first, coarse classifier: empty agents are `unknown`, HTTP libraries and command-line clients are recognised by
their product token, anything that announces itself as a bot is `other-bot`, and Mozilla-style agents with a
browser engine are `browser`. The agent lists in rules/agents/ refine this into named agents.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache
from typing import Literal

AgentClass = Literal[
    "browser",
    "ai-crawler",
    "ai-assistant",
    "search-engine",
    "seo-crawler",
    "link-preview",
    "feed-reader",
    "monitor",
    "archiver",
    "http-library",
    "headless-browser",
    "scanner",
    "other-bot",
    "unknown",
]


@dataclass(frozen=True, slots=True)
class AgentMatch:
    agent_class: AgentClass
    agent: str | None = None


_LIBRARY = re.compile(
    r"^(?P<name>curl|wget|python-requests|python-urllib|python-httpx|aiohttp|go-http-client|okhttp|java|"
    r"node-fetch|axios|scrapy|libwww-perl|httpie|ruby|php|guzzlehttp)\b",
    re.IGNORECASE,
)
_HEADLESS = re.compile(r"\b(headlesschrome|phantomjs)\b", re.IGNORECASE)
_BOT = re.compile(r"bot\b|crawl|spider|scrape|fetch|\+https?://|\bhttp", re.IGNORECASE)
_BROWSER = re.compile(r"^Mozilla/5\.0 \(.+\) (AppleWebKit/|Gecko/)")


@lru_cache(maxsize=8192)
def classify(user_agent: str) -> AgentMatch:
    if not user_agent.strip():
        return AgentMatch("unknown")
    library = _LIBRARY.match(user_agent)
    if library:
        return AgentMatch("http-library", library.group("name").lower())
    headless = _HEADLESS.search(user_agent)
    if headless:
        return AgentMatch("headless-browser", headless.group(1))
    if _BOT.search(user_agent):
        return AgentMatch("other-bot")
    if _BROWSER.match(user_agent):
        return AgentMatch("browser")
    return AgentMatch("unknown")
