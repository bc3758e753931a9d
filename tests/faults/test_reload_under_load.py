"""Rules edited into something broken while gate is under load (invalid YAML, then valid YAML with a bad rule): the
running policy keeps deciding every request as before, nothing fails, each refused reload is logged and counted;
then a good edit is picked up.

Single requests around one broken edit are tests/test_rules_reload.py's; this is the same under steady load.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.policy.helpers import GPTBOT_UA
from tests.support.gate_process import GateProcess, start_gate
from tests.support.nginx import Nginx
from tests.support.steady_load import Client, SteadyLoad

RULES = """
agents: [shipped:agents/*.yaml]
rules:
  - {name: essays-gone, match: {path: /essays/**}, action: deny, status: 451}
  - {name: ai-crawlers, match: {agent_class: ai-crawler}, action: terms}
default: {action: allow}
"""
INVALID_YAML = RULES.replace("default: {action: allow}", "default: {action: allow")
BAD_RULE = RULES.replace("action: deny", "action: dney")
GOOD_EDIT = RULES.replace("status: 451", "status: 410")
CLIENTS = {
    "reader": Client("/page.html", {"User-Agent": "curl/8.5.0"}),
    "essay-reader": Client("/essays/one.html", {"User-Agent": "curl/8.5.0"}),
    "crawler": Client("/page.html", {"User-Agent": GPTBOT_UA}),
}
BEFORE = {"reader": {200}, "essay-reader": {451}, "crawler": {403}}
ANSWERS_PER_STEP = 30
RELOAD_SECONDS = 5.0  # the watcher looks every 2 s


def write_atomically(path: Path, text: str) -> None:
    """As most editors save: a new file renamed over the old one (a reload never sees half a file)."""
    draft = path.with_suffix(".draft")
    draft.write_text(text)
    os.replace(draft, path)


def events(gate: GateProcess, name: str) -> list[dict[str, object]]:
    return [line for line in gate.log_lines() if line.get("event") == name]


def wait_for_event(gate: GateProcess, name: str, count: int) -> None:
    deadline = time.monotonic() + RELOAD_SECONDS
    while len(events(gate, name)) < count:
        assert time.monotonic() < deadline, f"no {name} event #{count} within {RELOAD_SECONDS} s"
        time.sleep(0.05)


@pytest.fixture
def rules_file(tmp_path: Path) -> Path:
    path = tmp_path / "rules.yaml"
    path.write_text(RULES)
    return path


@pytest.fixture
def watched_gate(tmp_path: Path, nginx: Nginx, rules_file: Path) -> Iterator[GateProcess]:
    gate = start_gate(tmp_path / "gate", nginx.url, "--rules", str(rules_file))
    try:
        yield gate
    finally:
        gate.stop()


def test_broken_rules_edits_under_load_keep_the_running_policy_until_a_good_one(
    watched_gate: GateProcess, rules_file: Path
) -> None:
    with SteadyLoad(watched_gate.url, CLIENTS) as load:
        load.wait_for(ANSWERS_PER_STEP, since=0.0)
        for number, broken in enumerate((INVALID_YAML, BAD_RULE), start=1):
            write_atomically(rules_file, broken)
            wait_for_event(watched_gate, "rules-reload-failed", number)
            refused = time.monotonic()
            load.wait_for(ANSWERS_PER_STEP, since=refused)
            assert {name: load.statuses(name, since=refused) for name in CLIENTS} == BEFORE
        edited = time.monotonic()
        write_atomically(rules_file, GOOD_EDIT)
        wait_for_event(watched_gate, "rules-reloaded", 1)
        reloaded = time.monotonic()
        load.wait_for(ANSWERS_PER_STEP, since=reloaded)

    failed = [answer for answer in load.answers() if answer.status is None or answer.status >= 500]
    assert failed == [], f"{len(failed)} failed requests, first: {failed[0]}"
    assert {name: load.statuses(name, until=edited) for name in CLIENTS} == BEFORE  # the old policy decided all
    assert load.statuses("essay-reader", since=reloaded) == {410}
    assert {name: load.statuses(name, since=reloaded) for name in ("reader", "crawler")} == {
        "reader": {200},
        "crawler": {403},
    }
    refusals = events(watched_gate, "rules-reload-failed")
    kept_version = refusals[0]["version"]
    assert [refusal["version"] for refusal in refusals] == [kept_version, kept_version]
    assert "dney" in str(refusals[1]["message"])
    assert watched_gate.metric("gate_rules_reloads_total", outcome="failure") == 2
    assert watched_gate.metric("gate_rules_reloads_total", outcome="success") == 1
