"""Which rules could match a request, found without trying them all.

Rules are tried in order, and a rule holds only when every one of its conditions does. So one condition that fails
rules the whole rule out, and many conditions can be looked up for all rules at once: the method, the agent class,
the agent, a signal, a header that must be present, the path's first segment, the User-Agent (every rule's regex in
one RE2 set, matched in one pass) and the client address (every rule's CIDRs in one interval index). Each rule is
filed under one such condition; a rule with none is tried for every request. With the shipped rules (about 15) the
plain loop is faster and no index is built; an owner's blocklist of a thousand rules costs a few lookups instead of
a thousand tests.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import re2

from gate.facts import Facts
from gate.fingerprint import Signals
from gate.net import AddressRange, NetworkIndex
from gate.policy.model import Rule

INDEX_FROM = 32  # rules; below this the plain loop is faster
# When a rule has several indexable conditions, the one looked up: the most selective first.
PREFERENCE = ("user_agent", "cidr", "path_segment", "header", "agent", "signal", "method", "agent_class")


class RuleIndex:
    def __init__(self, rules: Sequence[Rule]) -> None:
        self.always: list[int] = []
        self.by_value: dict[str, dict[str, list[int]]] = {
            kind: {} for kind in ("method", "agent_class", "agent", "signal", "header", "path_segment")
        }
        user_agents: list[tuple[str, int]] = []
        networks: dict[str, list[AddressRange]] = {}
        for number, rule in enumerate(rules):
            kind, values = filing(rule)
            if kind == "":
                self.always.append(number)
            elif kind == "user_agent":
                user_agents.append((values, number))
            elif kind == "cidr":
                networks[str(number)] = list(values)
            else:
                for value in values:
                    self.by_value[kind].setdefault(value, []).append(number)
        self.user_agents: Any = None
        self.user_agent_rules: list[int] = []
        if user_agents:
            patterns = re2.Set.SearchSet()
            for pattern, _ in user_agents:
                patterns.Add(pattern)
            try:
                patterns.Compile()
            except re2.error:  # more than RE2's memory budget for one set: these rules are tried one by one
                self.always = sorted(self.always + [number for _, number in user_agents])
            else:
                self.user_agents = patterns
                self.user_agent_rules = [number for _, number in user_agents]
        self.networks = NetworkIndex(networks) if networks else None

    def candidates(self, facts: Facts, signals: Signals) -> list[int]:
        """The numbers of the rules that could match, in rule order."""
        found = set(self.always)
        by_value = self.by_value
        found.update(by_value["method"].get(facts.method, ()))
        found.update(by_value["agent_class"].get(signals.agent_class, ()))
        if signals.agent_name is not None:
            found.update(by_value["agent"].get(signals.agent_name, ()))
        for name in signals.names:
            found.update(by_value["signal"].get(name, ()))
        headers = by_value["header"]
        for name in headers.keys() & facts.headers.keys():
            found.update(headers[name])
        found.update(by_value["path_segment"].get(first_segment(facts.path), ()))
        if self.user_agents is not None:
            matched = self.user_agents.Match(facts.user_agent) or ()  # None when nothing matches
            found.update(self.user_agent_rules[match] for match in matched)
        if self.networks is not None:
            found.update(int(name) for name in self.networks.lookup(facts.ip))
        return sorted(found)


def filing(rule: Rule) -> tuple[str, Any]:
    """The condition a rule is filed under (kind and values), or ("", None) when it has none that can be."""
    keys = dict(condition.key for condition in rule.conditions if condition.key is not None)
    for kind in PREFERENCE:
        if kind in keys:
            return kind, keys[kind]
    return "", None


def first_segment(path: str) -> str:
    """ "essays" for /essays/one.html and for /essays; "" for /."""
    return path[1:].partition("/")[0]
