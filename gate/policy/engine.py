"""Evaluating the policy for one request."""

from __future__ import annotations

from typing import Protocol

from gate.facts import Facts
from gate.fingerprint import Signals
from gate.policy.model import Action, Decision


class Policy(Protocol):
    def evaluate(self, facts: Facts, signals: Signals) -> Decision: ...


class AllowAll:
    """The policy until the rules engine loads one: every request is allowed, and the decision says so."""

    decision = Decision(Action.ALLOW, "allow-all", ("no policy rules loaded: every request is allowed",))

    def evaluate(self, facts: Facts, signals: Signals) -> Decision:
        return self.decision
