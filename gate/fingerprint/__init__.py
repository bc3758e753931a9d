"""Fingerprinting: from Facts to the signals the policy reads."""

from __future__ import annotations

from dataclasses import dataclass

from gate.facts import Facts
from gate.fingerprint.agents import AgentClass, classify


@dataclass(frozen=True, slots=True)
class Signals:
    agent_class: AgentClass
    agent: str | None  # the matched agent's name, None when only the class is known


def fingerprint(facts: Facts) -> Signals:
    match = classify(facts.user_agent)
    return Signals(agent_class=match.agent_class, agent=match.agent)
