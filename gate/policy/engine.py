"""Evaluating the policy for one request: ordered rules, then score thresholds, then the default."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from gate.facts import Facts
from gate.fingerprint import Fingerprinter, Signals
from gate.policy.index import INDEX_FROM, RuleIndex
from gate.policy.model import Action, Bans, Decision, Effect, Limit, LoadThresholds, Rule, Threshold
from gate.terms.model import Terms


@dataclass(frozen=True)
class Policy:
    """A compiled policy. Pure: `fingerprint` and `evaluate` do no I/O, so `gate check` runs them offline.

    Rules are tried in order. `weigh` rules add their weight to the score and evaluation goes on; the first other
    rule that matches decides. When none does, the highest threshold the score reaches decides, else the default.
    The score starts as the sum of the weights of the request's signals.
    """

    rules: tuple[Rule, ...]
    thresholds: tuple[Threshold, ...]  # highest score first
    default: Threshold
    weights: Mapping[str, float]
    fingerprinter: Fingerprinter
    limits: Mapping[str, Limit]
    guards: tuple[Limit, ...]  # charged for every request gate lets through
    files: tuple[Path, ...]  # every file read, for reloading when one changes
    version: str  # hash of those files' contents
    bans: Bans | None = None  # escalation of repeated limit refusals to a ban of the address
    load: LoadThresholds | None = None  # when the site counts as busy (the `load` match condition)
    terms: Terms = field(default_factory=Terms)  # the owner's terms for AI crawlers (gate/terms)
    # Web Bot Auth key directories the rules name (verified: entries, signer: conditions): the only ones fetched
    signers: frozenset[str] = frozenset()
    # Rules looked up by what they match (gate/policy/index.py), built with the policy: at load, off the request path
    index: RuleIndex | None = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "index", RuleIndex(self.rules) if len(self.rules) >= INDEX_FROM else None)

    def fingerprint(self, facts: Facts) -> Signals:
        return self.fingerprinter(facts)

    def limits_for(self, decision: Decision) -> tuple[Limit, ...]:
        """The guards, and a throttle decision's own limit: what a request the decision lets through is charged."""
        rule_limit = self.limits.get(decision.limit or "") if decision.action is Action.THROTTLE else None
        return (rule_limit, *self.guards) if rule_limit is not None else self.guards

    def evaluate(self, facts: Facts, signals: Signals) -> Decision:
        score = 0.0
        reasons: list[str] = []
        for finding in signals.findings:
            weight = self.weights.get(finding.name, 0.0)
            score += weight
            reasons.append(f"signal {finding} ({weight:+g})")
        index = self.index
        rules = self.rules if index is None else [self.rules[number] for number in index.candidates(facts, signals)]
        for rule in rules:
            if not rule.matches(facts, signals):
                continue
            if rule.effect.action is Action.WEIGH:
                score += rule.effect.weight
                reasons.append(f"{rule.because()} ({rule.effect.weight:+g})")
                continue
            reasons.append(rule.because())
            return _decision(rule.effect, rule.name, reasons, score)
        for threshold in self.thresholds:
            if score >= threshold.score:
                reasons.append(
                    f"score {score:g} reached threshold {threshold.name} ({threshold.score:g}, {threshold.source})"
                )
                return _decision(threshold.effect, threshold.name, reasons, score)
        reasons.append(f"no rule matched and score {score:g} is below every threshold: default ({self.default.source})")
        return _decision(self.default.effect, self.default.name, reasons, score)


def _decision(effect: Effect, rule: str, reasons: list[str], score: float) -> Decision:
    return Decision(effect.action, rule, tuple(reasons), score, effect.difficulty, effect.limit, effect.status)
