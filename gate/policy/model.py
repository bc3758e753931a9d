"""The policy's vocabulary: actions and the decision a policy returns."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class Action(StrEnum):
    ALLOW = "allow"
    DENY = "deny"
    CHALLENGE = "challenge"
    TERMS = "terms"
    THROTTLE = "throttle"
    WEIGH = "weigh"


@dataclass(frozen=True, slots=True)
class Decision:
    """What gate does with a request, which rule said so, and why (shown by `gate check` and in logs)."""

    action: Action
    rule: str
    reasons: tuple[str, ...] = ()
