"""The policy's vocabulary: actions, compiled rules and conditions, and the decision a policy returns."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum
from typing import TYPE_CHECKING, Any

LIMIT_SUBJECTS = ("ip", "network", "pass", "agent", "site")

if TYPE_CHECKING:
    from gate.facts import Facts
    from gate.fingerprint import Signals


class Action(StrEnum):
    ALLOW = "allow"
    DENY = "deny"
    CHALLENGE = "challenge"
    TERMS = "terms"
    THROTTLE = "throttle"
    WEIGH = "weigh"


# Its own __init__ (init=False): mypyc compiles that one, not the one dataclass generates (docs/architecture.md).
@dataclass(slots=True, init=False)
class Decision:
    """What gate does with a request, which rule said so, and why (shown by `gate check` and in logs)."""

    action: Action
    rule: str
    reasons: tuple[str, ...] = ()
    score: float = 0.0
    difficulty: int | None = None  # challenge: leading zero bits the proof of work needs
    limit: str | None = None  # throttle: the named limit
    status: int | None = None  # the status code the rule asks for, when not the action's usual one

    def __init__(
        self,
        action: Action,
        rule: str,
        reasons: tuple[str, ...] = (),
        score: float = 0.0,
        difficulty: int | None = None,
        limit: str | None = None,
        status: int | None = None,
    ) -> None:
        self.action = action
        self.rule = rule
        self.reasons = reasons
        self.score = score
        self.difficulty = difficulty
        self.limit = limit
        self.status = status


@dataclass(frozen=True, slots=True)
class Condition:
    """One compiled test of a rule's `match`, with the text that explains it when it holds."""

    describe: str
    test: Callable[[Facts, Signals], bool]
    # What the condition needs, for looking rules up by it (gate/policy/index.py): (kind, values), or None
    key: tuple[str, Any] | None = None


@dataclass(frozen=True, slots=True)
class Effect:
    """What a rule, threshold or default does when it applies."""

    action: Action
    difficulty: int | None = None
    limit: str | None = None
    status: int | None = None
    weight: float = 0.0


@dataclass(frozen=True, slots=True)
class Rule:
    name: str
    conditions: tuple[Condition, ...]
    effect: Effect
    source: str  # file:line, for reasons and errors
    description: str = ""

    def matches(self, facts: Facts, signals: Signals) -> bool:
        for condition in self.conditions:  # noqa: SIM110 - a plain loop is faster than all(); it runs per rule per request
            if not condition.test(facts, signals):
                return False
        return True

    def because(self) -> str:
        tests = "; ".join(condition.describe for condition in self.conditions) or "always"
        return f"rule {self.name} ({self.source}): {tests}"


@dataclass(frozen=True, slots=True)
class Threshold:
    """When no terminal rule matched: a total score of at least `score` leads to `effect`."""

    name: str
    score: float
    effect: Effect
    source: str


@dataclass(frozen=True, slots=True)
class Limit:
    """A named rate limit: `rate` requests per `period` seconds, with bursts of up to `burst`, counted separately
    for each value of every `per` subject (ip, network, pass, agent, site), all in one atomic charge."""

    name: str
    rate: int
    period: float
    burst: int
    per: tuple[str, ...] = ("ip",)
    browsers: str = "challenge"  # a browser over the limit gets a challenge ("challenge") or the 429 ("refuse")

    @property
    def interval(self) -> float:
        return self.period / self.rate


@dataclass(frozen=True, slots=True)
class Bans:
    """Escalation: `after` refusals by rate limits within `window` seconds ban the client's address for
    `duration` seconds."""

    after: int
    window: float
    duration: float


@dataclass(frozen=True, slots=True)
class LoadThresholds:
    """When the site counts as busy, for rules matching `load: busy`: more than `requests_per_second` across every
    instance, or an upstream 90th-percentile response time above `upstream_p90` seconds. It stays busy for `hold`
    seconds after the last busy measurement, so rules do not flap."""

    requests_per_second: float | None
    upstream_p90: float | None
    hold: float
