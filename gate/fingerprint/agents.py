"""User-Agent -> agent class and named agent.

Order of the checks: empty (unknown) -> the agent lists in rules/agents/ (product tokens, whole word,
case-insensitive, all tokens in one precompiled linear-time automaton) -> anything with a bot's tells, or not shaped
like a browser's string, is other-bot -> browser (family, version and OS from ua-parser). A bot-looking string is
never a browser.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any, Literal, get_args

import re2

from gate.fingerprint.browsers import BrowserInfo, parse_browser
from gate.policy.source import LineList, Problem, Section, read_yaml

AgentClass = Literal[
    "browser", "ai-crawler", "ai-assistant", "search-engine", "seo-crawler", "link-preview", "feed-reader",
    "monitor", "archiver", "http-library", "headless-browser", "scanner", "other-bot", "unknown",
]  # fmt: skip
AGENT_CLASSES: frozenset[str] = frozenset(get_args(AgentClass))
# Classes a list may declare: "browser" and "unknown" are what is left when no list matches.
LISTED_CLASSES = AGENT_CLASSES - {"browser", "unknown"}

# Bot tells for agents no list names. Case matters for "bot": Googlebot, GPTBot and "Bot" end a bot's name, while
# "CUBOT" is a phone brand in real browser strings.
_BOT_TELLS = re.compile(
    r"[a-z]bot\b|Bot\b|\bbot\b|[Cc]rawl|[Ss]pider|[Ss]craper|[Ff]etcher|https?://|[Hh]ttp[Cc]lient|[Hh]eadless|"
    # Browsers never add to WebKit's "(KHTML, like Gecko)" comment, and no current one starts "(compatible;":
    # tools that dress up as a browser do both ("KHTML, like Gecko; Google Page Speed Insights").
    r"\(KHTML, like Gecko[;,][^)]*\)|^Mozilla/5\.0 \(compatible"
)
# A contact address (searched only when there is an "@"); Ecosia's "android@150.0" is not one.
_CONTACT = re.compile(r"[\w.+-]+@[\w-]+(?:\.[\w-]+)*\.[A-Za-z]{2,}\b")
# A browser string: "Mozilla/5.0 (platform) Engine/version ..." (the platform may nest parentheses: "Moto G (4)"),
# IE 11, or classic Opera Presto, still used by Opera Mini. Anything else that is not empty is a program: other-bot.
_BROWSER_SHAPE = re.compile(
    r"^Mozilla/5\.0 \(.+?\) (?:AppleWebKit|Gecko)/|^Mozilla/5\.0 \(.*Trident/7\.0|^Opera/9\.80 \(",
    re.IGNORECASE,  # some Android builds write "AppleWebkit"
)
CACHE_SIZE = 16384
MAX_USER_AGENT = 512
# A token is a whole word: letters, digits, '-', '_' and '.' belong to the word around it.
WORD_CHARACTERS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_.")
# Classes of tools other agents are built on: a User-Agent naming both is the other agent.
GENERIC_CLASSES = frozenset({"http-library", "headless-browser"})


@dataclass(frozen=True, slots=True)
class Agent:
    name: str
    agent_class: AgentClass
    tokens: tuple[str, ...]
    operator: str = ""
    description: str = ""
    robots_txt: bool | None = None  # does the operator say it obeys robots.txt (None: unknown)
    robots_txt_only: bool = False  # a robots.txt control name that never appears in a User-Agent
    url: str = ""
    source: str = ""  # file:line


@dataclass(frozen=True, slots=True)
class AgentMatch:
    agent_class: AgentClass
    agent: Agent | None = None
    browser: BrowserInfo | None = None

    @property
    def agent_name(self) -> str | None:
        return self.agent.name if self.agent else None


class AgentCatalog:
    """Every named agent, with one automaton over all their tokens; `classify` is cached per User-Agent."""

    def __init__(self, agents: Sequence[Agent]) -> None:
        self.agents = tuple(agents)
        self.by_name = {agent.name.lower(): agent for agent in self.agents}
        self._by_token = {token.lower(): agent for agent in self.agents for token in agent.tokens}
        self._tokens = self._compile(self._by_token)
        self.cache = lru_cache(maxsize=CACHE_SIZE)(self._classify)

    def classify(self, user_agent: str) -> AgentMatch:
        """Cached on the first MAX_USER_AGENT characters: names come first, and the cache must stay small even
        when clients send megabyte User-Agents."""
        return self.cache(user_agent[:MAX_USER_AGENT])

    @staticmethod
    def _compile(tokens: Iterable[str]) -> Any:
        alternatives = sorted(tokens, key=len, reverse=True)
        if not alternatives:
            return None
        options = re2.Options()
        options.case_sensitive = False
        options.longest_match = True  # "Googlebot-Image" wins over "Googlebot" at the same place
        return re2.compile("|".join(re2.escape(token) for token in alternatives), options)

    def find(self, user_agent: str) -> Agent | None:
        """The listed agent named in a User-Agent: the first whole-word token, a named agent before a library or a
        headless browser (a crawler built on either names itself too)."""
        if self._tokens is None:
            return None
        found: Agent | None = None  # the best generic match so far: a headless browser before a library
        for match in self._tokens.finditer(user_agent):
            start, end = match.start(), match.end()
            if (start > 0 and user_agent[start - 1] in WORD_CHARACTERS) or (
                end < len(user_agent) and user_agent[end] in WORD_CHARACTERS
            ):
                continue  # not a whole word: "Java" in "JavaScript", "PHP" in "index.php", "Code" in "code.google.com"
            agent = self._by_token[match.group(0).lower()]
            if agent.agent_class == "http-library" and start > 0 and not user_agent.startswith("/", end):
                continue  # a library names itself as a product ("Tornado/6.4"), not a phone model ("Tornado 348")
            if agent.agent_class not in GENERIC_CLASSES:
                return agent
            if found is None or (found.agent_class == "http-library" and agent.agent_class == "headless-browser"):
                found = agent
        return found

    def _classify(self, user_agent: str) -> AgentMatch:
        if not user_agent.strip():
            return AgentMatch("unknown")
        agent = self.find(user_agent)
        if agent is not None:
            return AgentMatch(agent.agent_class, agent)
        if (
            _BOT_TELLS.search(user_agent)
            or ("@" in user_agent and _CONTACT.search(user_agent))
            or not _BROWSER_SHAPE.match(user_agent)
        ):
            return AgentMatch("other-bot")
        return AgentMatch("browser", browser=parse_browser(user_agent))


def load_agents(paths: Sequence[Path], problems: list[Problem]) -> list[Agent]:
    """Read agent list files; names and tokens must be unique across all of them."""
    agents: list[Agent] = []
    names: dict[str, str] = {}
    tokens: dict[str, str] = {}
    for path in paths:
        for agent in _read_agent_file(path, problems):
            key = agent.name.lower()
            if key in names:
                problems.append(_problem_at(agent, f"agent {agent.name!r} is already defined at {names[key]}"))
                continue
            names[key] = agent.source
            for token in agent.tokens:
                if token.lower() in tokens:
                    problems.append(_problem_at(agent, f"token {token!r} is already used by {tokens[token.lower()]}"))
                tokens[token.lower()] = f"{agent.name} ({agent.source})"
            agents.append(agent)
    return agents


def _problem_at(agent: Agent, message: str) -> Problem:
    file, _, line = agent.source.rpartition(":")
    return Problem(file, int(line), message)


def _read_agent_file(path: Path, problems: list[Problem]) -> list[Agent]:
    file = str(path)
    known = len(problems)
    data = read_yaml(path, problems)
    if len(problems) > known:
        return []  # unreadable or invalid YAML: that is the problem to report
    document = Section.of(data, file, 1, problems, "an agent list")
    if document is None:
        return []
    default_class = document.get("class", str, "")
    if default_class and default_class not in LISTED_CLASSES:
        document.problem("class", f"class: {default_class!r} is not one of {', '.join(sorted(LISTED_CLASSES))}")
    entries = document.raw("agents")
    document.finish()
    if not isinstance(entries, LineList):
        document.problem("agents" if document.has("agents") else None, "agents: expected a list of agents")
        return []
    agents = []
    for entry, line in zip(entries, entries.item_lines, strict=True):
        section = Section.of(entry, file, line, problems, "an agent")
        if section is None:
            continue
        agent = _read_agent(section, default_class, f"{file}:{line}")
        section.finish()
        if agent is not None:
            agents.append(agent)
    return agents


def _read_agent(section: Section, default_class: str, source: str) -> Agent | None:
    name = section.get("name", str, "")
    agent_class = section.get("class", str, default_class)
    tokens = section.strings("tokens")
    robots = section.raw("robots_txt")
    robots_only = section.get("robots_txt_only", bool, False)
    agent = Agent(
        name=name,
        agent_class=agent_class,  # type: ignore[arg-type]  # checked below
        tokens=tuple(tokens),
        operator=section.get("operator", str, ""),
        description=section.get("description", str, ""),
        robots_txt=robots if isinstance(robots, bool) else None,
        robots_txt_only=robots_only,
        url=section.get("url", str, ""),
        source=source,
    )
    if robots is not None and not isinstance(robots, bool) and robots != "unknown":
        section.problem("robots_txt", "robots_txt: expected true, false or unknown")
    if not name:
        section.problem(None, "an agent needs a name")
        return None
    if agent_class not in LISTED_CLASSES:
        section.problem("class" if section.has("class") else None, f"agent {name!r}: no valid class")
        return None
    if not tokens and not robots_only:
        section.problem("tokens", f"agent {name!r}: needs tokens (or robots_txt_only: true)")
    for token in tokens:
        if token != token.strip() or not token or not (token[0].isalnum() and token[-1].isalnum()):
            section.problem("tokens", f"token {token!r}: must start and end with a letter or digit")
    return agent
