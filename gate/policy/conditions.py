"""The tests behind rules' match conditions: built once per rules load (gate/policy/load.py), run on every request.

They are kept out of gate/policy/load.py, which runs only at load and stays interpreted, so that mypyc compiles
them with the engine that calls them: as lambdas in the loader, each condition of each rule tried cost a request an
interpreter frame.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from gate.facts import Facts
from gate.fingerprint import Signals
from gate.net import NetworkIndex, hostname
from gate.policy.model import Condition

Test = Callable[[Facts, Signals], bool]
ValueTest = Callable[[str | None], bool]  # a header's or query parameter's value, None when absent
Lookup = Callable[[Facts, str], str | None]


def none_of(inner: list[Condition]) -> Test:
    """`not:`, true unless every condition of the inner match holds."""
    return lambda facts, signals: not all(condition.test(facts, signals) for condition in inner)


def any_group(groups: list[list[Condition]]) -> Test:
    return lambda facts, signals: any(all(c.test(facts, signals) for c in group) for group in groups)


def every_group(groups: list[list[Condition]]) -> Test:
    return lambda facts, signals: all(all(c.test(facts, signals) for c in group) for group in groups)


def verified_is(wanted: bool) -> Test:
    return lambda _, signals: signals.verified is wanted


def agent_class_in(classes: frozenset[str]) -> Test:
    return lambda _, signals: signals.agent_class in classes


def agent_in(names: frozenset[str]) -> Test:
    return lambda _, signals: signals.agent_name in names


def method_in(methods: frozenset[str]) -> Test:
    return lambda facts, _: facts.method in methods


def path_matches(pattern: re.Pattern[str]) -> Test:
    """The whole path matches a glob's pattern."""
    return lambda facts, _: pattern.fullmatch(facts.path) is not None


def host_matches(pattern: re.Pattern[str]) -> Test:
    return lambda facts, _: pattern.fullmatch(hostname(facts.host)) is not None


def user_agent_search(pattern: Any) -> Test:
    """An operator's regex (RE2, so typed Any) found in the User-Agent."""
    return lambda facts, _: pattern.search(facts.user_agent) is not None


def path_search(pattern: Any) -> Test:
    return lambda facts, _: pattern.search(facts.path) is not None


def network_in(lists: frozenset[str]) -> Test:
    return lambda _, signals: not lists.isdisjoint(signals.networks)


def address_in(index: NetworkIndex) -> Test:
    return lambda facts, _: bool(index.lookup(facts.ip))


def signature_in(states: frozenset[str]) -> Test:
    return lambda _, signals: signals.signature in states


def signer_in(signers: frozenset[str]) -> Test:
    return lambda _, signals: signals.signer in signers


def signal_in(wanted: frozenset[str]) -> Test:
    return lambda _, signals: not wanted.isdisjoint(signals.names)


def site_busy_is(busy: bool) -> Test:
    return lambda facts, _: facts.site_busy is busy


def values_hold(named: list[tuple[str, str, ValueTest]], lookup: Lookup) -> Test:
    """`header:` / `query:`: every (name, description, test) holds for its value."""
    return lambda facts, _: all(test(lookup(facts, name)) for name, _, test in named)


def presence(wanted: bool) -> ValueTest:
    return lambda value: (value is not None) is wanted


def value_search(pattern: Any) -> ValueTest:
    return lambda value: value is not None and pattern.search(value) is not None


def header_value(facts: Facts, name: str) -> str | None:
    return facts.headers.get(name)


def query_value(facts: Facts, name: str) -> str | None:
    for pair in facts.query.split("&"):
        key, _, value = pair.partition("=")
        if key == name:
            return value
    return None
