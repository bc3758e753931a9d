"""Each log entry through what `gate serve` does with a request: Facts, the fingerprint, the verify step (when
asked to), the policy, and the limits and bans, charged in a memory store that runs on the log's own clock.

What a log does not record, gate cannot judge: the header-consistency signals (Accept-Language, client hints,
Sec-Fetch-*) are dropped, so a browser in a log is judged by its User-Agent, address and behaviour alone.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass, replace
from urllib.parse import unquote, urlsplit

from protego import Protego

from gate.app import Gate
from gate.audit.logs import LogEntry
from gate.check import NO_PROXIES
from gate.facts import Facts
from gate.fingerprint import Signals
from gate.net import parse_ip
from gate.policy.engine import Policy
from gate.policy.model import Action, Decision
from gate.store.memory import MemoryStore
from gate.terms.documents import ai_robots_names, merged_robots
from gate.terms.service import ROBOTS_CLASSES
from gate.throttle import Refusal, Throttle
from gate.verify import Verifier

# Signals only request headers give, which access logs do not keep.
HEADER_ONLY_SIGNALS = frozenset(
    {
        "no-client-hints",
        "client-hints-mismatch",
        "client-hints-not-chromium",
        "headless-client-hints",
        "sec-fetch-invalid",
        "sec-fetch-missing",
        "no-accept",
        "no-accept-language",
        "no-accept-encoding",
        "library-headers",
    }
)
TERMS_PATH = "/.gate/terms"
MAX_PASSES = 100_000  # browser sessions remembered at once (the least recently seen go first)
MAX_STORE_KEYS = 200_000  # rate-limit, strike and ban keys: the least recently used go first, so memory stays bounded


class LogClock:
    """The time of the entry being replayed: what the memory store measures lifetimes and rates on."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


@dataclass(frozen=True, slots=True)
class Judged:
    """What gate would have done with one logged request."""

    entry: LogEntry
    facts: Facts
    signals: Signals
    decision: Decision
    action: Action  # what gate would have done: the decision, or throttle/challenge over a limit
    passed: bool  # challenged, but let in on the pass token its browser earned at an earlier challenge
    refusal: Refusal | None
    banned_now: bool  # this request's refusal is the one that got its address banned
    robots_violation: bool


class Unjudgeable(ValueError):
    """A parsed line gate could not have received as a request (a host name for an address, an unusable target)."""


class Simulator:
    def __init__(
        self,
        policy: Policy,
        verifier: Verifier | None = None,
        upstream_robots: str = "",
        pass_lifetime: float = 86400.0,
        pass_budget: int = 1000,
    ) -> None:
        self.policy = policy
        self.verifier = verifier
        self.pass_lifetime = pass_lifetime
        self.pass_budget = pass_budget
        # (address, User-Agent) -> (pass expiry, requests left): a browser that was challenged is taken to have
        # solved it, as real browsers do, and comes back with its pass token until it expires or is used up.
        self._passes: OrderedDict[tuple[str, str], tuple[float, int]] = OrderedDict()
        self._banned_until: OrderedDict[str, float] = OrderedDict()  # to tell a new ban from a running one
        self.clock = LogClock()
        self.store = MemoryStore(max_keys=MAX_STORE_KEYS, clock=self.clock)
        self.throttle = Throttle(self.store, fail_closed=False, dry_run=False)
        names = ai_robots_names(policy.fingerprinter.catalog.agents)
        self.robots = Protego.parse(merged_robots(upstream_robots, policy.terms, names, TERMS_PATH))

    async def judge(self, entry: LogEntry) -> Judged:
        """Raises Unjudgeable for a line gate could not have received as a request."""
        if parse_ip(entry.ip) is None:
            raise Unjudgeable("the address is a host name, not an IP address (Apache's HostnameLookups?)")
        # Lines are logged as requests end, slightly out of order: the store's clock never runs backwards.
        self.clock.now = max(self.clock.now, entry.time)
        facts = Facts.from_scope(scope_of(entry), NO_PROXIES)
        signals = self.policy.fingerprint(facts)
        if any(finding.name in HEADER_ONLY_SIGNALS for finding in signals.findings):
            findings = tuple(finding for finding in signals.findings if finding.name not in HEADER_ONLY_SIGNALS)
            signals = replace(signals, findings=findings)
        if self.verifier is not None:
            signals = await self.verifier.settle(facts, signals, self.policy)
        decision = self.policy.evaluate(facts, signals)
        action, refusal, banned_now = decision.action, None, False
        passed = action is Action.CHALLENGE and self.has_pass(facts, signals)
        if passed:
            action = Action.ALLOW
        if action in (Action.ALLOW, Action.THROTTLE):
            limits = self.policy.limits_for(decision)
            refusal = await self.throttle.charge(limits, facts, signals, self.policy.bans, None)
            if refusal is not None:
                over_limit = Gate.over_limit_challenge(refusal, signals, decision)
                action = Action.CHALLENGE if over_limit is not None else Action.THROTTLE
                banned_now = self.is_new_ban(facts.ip, refusal)
        robots_violation = self.violates_robots(facts, signals)
        return Judged(entry, facts, signals, decision, action, passed, refusal, banned_now, robots_violation)

    def is_new_ban(self, ip: str, refusal: Refusal) -> bool:
        """Whether this refusal is the one that bans the address (as Throttle.strike does)."""
        bans = self.policy.bans
        if refusal.reason != "limit" or bans is None or refusal.strikes < bans.after:
            return False
        if self._banned_until.get(ip, 0.0) > self.clock.now:
            return False
        self._banned_until[ip] = self.clock.now + bans.duration
        self._banned_until.move_to_end(ip)
        while len(self._banned_until) > MAX_STORE_KEYS:
            self._banned_until.popitem(last=False)
        return True

    def has_pass(self, facts: Facts, signals: Signals) -> bool:
        """Whether a challenged request comes with a pass; a browser's first challenge gives it one for later."""
        if signals.agent_class != "browser":
            return False  # libraries, headless browsers and bots do not solve challenges
        key = (facts.ip, facts.user_agent)
        now = self.clock.now
        expires, left = self._passes.pop(key, (0.0, 0))
        if expires > now and left > 0:
            self._passes[key] = (expires, left - 1)
            return True
        self._passes[key] = (now + self.pass_lifetime, self.pass_budget)  # this challenge is solved
        while len(self._passes) > MAX_PASSES:
            self._passes.popitem(last=False)
        return False

    def violates_robots(self, facts: Facts, signals: Signals) -> bool:
        """A declared crawler fetching what gate's robots.txt (merged with the site's own, when given) disallows it."""
        name = signals.agent_name
        if not name or signals.agent_class not in ROBOTS_CLASSES:
            return False
        url = f"http://site{facts.raw_path}" + (f"?{facts.query}" if facts.query else "")
        return not self.robots.can_fetch(url, name)


def scope_of(entry: LogEntry) -> dict[str, object]:
    """The ASGI scope a server would have built for the logged request, with the headers the log kept."""
    try:
        parts = urlsplit("http://log" + entry.target if entry.target.startswith("/") else entry.target)
    except ValueError:
        raise Unjudgeable("the request target is not a URL") from None
    headers = [(b"user-agent", entry.user_agent.encode("latin-1", "replace"))] if entry.user_agent != "-" else []
    if entry.referer not in ("", "-"):
        headers.append((b"referer", entry.referer.encode("latin-1", "replace")))
    if entry.host:
        headers.append((b"host", entry.host.encode("latin-1", "replace")))
    version = entry.protocol.removeprefix("HTTP/") or "1.0"
    return {
        "type": "http",
        "http_version": version,
        "method": entry.method.upper(),
        "scheme": "https",
        "path": unquote(parts.path or "/"),
        "raw_path": (parts.path or "/").encode("latin-1", "replace"),
        "query_string": parts.query.encode("latin-1", "replace"),
        "headers": headers,
        "client": (entry.ip, 0),
    }
