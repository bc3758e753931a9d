"""RulesWatcher: a reload swaps in an edited policy, a broken edit keeps the working one, and `changed()` notices
edited files and new files in a folder a glob reads. Real files; modification times are set explicitly."""

from __future__ import annotations

import asyncio
import os
import time
from pathlib import Path

import pytest

from gate.policy import shipped_rules
from gate.policy.engine import Policy
from gate.policy.load import load_policy
from gate.policy.model import Action
from gate.policy.reload import RulesWatcher
from tests.policy.helpers import decide, write_rules

ALLOW_ALL = "rules: [{name: everyone, action: allow}]\n"
DENY_ADMIN = """
rules:
  - {name: no-admin, match: {path: /admin/**}, action: deny}
  - {name: everyone, action: allow}
"""
BROKEN = "rules: [{name: everyone, action: alow}]\n"
ADMIN = "http://example.org/admin/panel"


def touch_later(path: Path, seconds: float = 10.0) -> None:
    """Move a file's modification time forward, as an edit a while later would (mtime granularity is coarse)."""
    stat = path.stat()
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + int(seconds * 1e9)))


def edit(path: Path, text: str) -> None:
    path.write_text(text)
    touch_later(path)


@pytest.fixture
def rules(tmp_path: Path) -> Path:
    return write_rules(tmp_path, ALLOW_ALL)


@pytest.fixture
def watcher(rules: Path) -> RulesWatcher:
    return RulesWatcher(rules, load_policy(rules))


def test_nothing_changed_right_after_loading(watcher: RulesWatcher) -> None:
    assert not watcher.changed()


def test_reload_picks_up_an_edit(watcher: RulesWatcher, rules: Path) -> None:
    before = watcher.policy
    assert decide(before, ADMIN).action is Action.ALLOW
    edit(rules, DENY_ADMIN)
    assert watcher.changed()
    assert watcher.reload("test") is True
    assert watcher.policy is not before
    assert watcher.policy.version != before.version
    decision = decide(watcher.policy, ADMIN)
    assert (decision.action, decision.rule) == (Action.DENY, "no-admin")
    assert decide(before, ADMIN).action is Action.ALLOW  # a request in flight keeps the policy it started with
    assert not watcher.changed()


def test_a_broken_edit_keeps_the_old_policy(watcher: RulesWatcher, rules: Path) -> None:
    edit(rules, DENY_ADMIN)
    watcher.reload("test")
    working = watcher.policy
    edit(rules, BROKEN)
    assert watcher.changed()
    assert watcher.reload("test") is False
    assert watcher.policy is working
    assert decide(watcher.policy, ADMIN).rule == "no-admin"


def test_a_broken_edit_is_not_retried_until_the_next_edit(watcher: RulesWatcher, rules: Path) -> None:
    edit(rules, BROKEN)
    assert watcher.reload("test") is False
    assert not watcher.changed()
    edit(rules, DENY_ADMIN)
    assert watcher.changed()
    assert watcher.reload("test") is True
    assert decide(watcher.policy, ADMIN).rule == "no-admin"


def test_a_broken_edit_logs_the_problem(watcher: RulesWatcher, rules: Path, caplog: pytest.LogCaptureFixture) -> None:
    edit(rules, BROKEN)
    watcher.reload("test")
    assert f"{rules}:1: action: 'alow'" in caplog.text
    assert watcher.policy.version in caplog.text


def test_an_edited_imported_file_is_noticed(tmp_path: Path) -> None:
    base = write_rules(tmp_path, ALLOW_ALL, "base.yaml")
    rules = write_rules(tmp_path, "import: [base.yaml]\n")
    watcher = RulesWatcher(rules, load_policy(rules))
    edit(base, DENY_ADMIN)
    assert watcher.changed()
    watcher.reload("test")
    assert decide(watcher.policy, ADMIN).rule == "no-admin"


def test_an_edit_of_the_same_size_is_noticed_by_its_time(watcher: RulesWatcher, rules: Path) -> None:
    rules.write_text(ALLOW_ALL.replace("allow", "deny "))  # same length
    touch_later(rules)
    assert watcher.changed()


def test_a_new_file_in_a_globbed_folder_is_noticed_and_loaded(tmp_path: Path) -> None:
    agents = tmp_path / "agents"
    write_rules(agents, "class: monitor\nagents: [{name: Pinger, tokens: [Pinger]}]\n", "one.yaml")
    rules = write_rules(
        tmp_path,
        """
        agents: [agents/*.yaml]
        rules: [{name: crawlers, match: {agent_class: seo-crawler}, action: deny}]
        """,
    )
    watcher = RulesWatcher(rules, load_policy(rules))
    user_agent = [("User-Agent", "Digger/1.0")]
    assert decide(watcher.policy, headers=user_agent).action is Action.ALLOW
    write_rules(agents, "class: seo-crawler\nagents: [{name: Digger, tokens: [Digger]}]\n", "two.yaml")
    touch_later(agents)
    assert watcher.changed()
    assert watcher.reload("test") is True
    assert decide(watcher.policy, headers=user_agent).rule == "crawlers"
    assert agents / "two.yaml" in watcher.policy.files


def test_a_deleted_file_is_noticed(tmp_path: Path) -> None:
    write_rules(tmp_path, ALLOW_ALL, "base.yaml")
    rules = write_rules(tmp_path, "import: [base.yaml]\n")
    watcher = RulesWatcher(rules, load_policy(rules))
    (tmp_path / "base.yaml").unlink()
    assert watcher.changed()
    assert watcher.reload("test") is False


async def test_watch_reloads_by_itself(watcher: RulesWatcher, rules: Path) -> None:
    task = asyncio.create_task(watcher.watch(interval=0.01))
    try:
        edit(rules, DENY_ADMIN)
        for _ in range(500):
            if watcher.policy.rules[0].name == "no-admin":
                break
            await asyncio.sleep(0.01)
        assert watcher.policy.rules[0].name == "no-admin"
    finally:
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task


async def test_a_reload_off_the_loop_lets_the_loop_serve_meanwhile() -> None:
    """Compiling the shipped rules takes half a second or more; the event loop must keep turning while it runs."""
    watcher = RulesWatcher(shipped_rules(), load_policy(shipped_rules()))
    before = watcher.policy
    gaps: list[float] = []

    async def tick() -> None:
        last = time.perf_counter()
        while True:
            await asyncio.sleep(0.001)
            now = time.perf_counter()
            gaps.append(now - last)
            last = now

    ticker = asyncio.create_task(tick())
    started = time.perf_counter()
    assert await watcher.reload_off_loop("test") is True
    took = time.perf_counter() - started
    ticker.cancel()
    assert watcher.policy is not before
    assert len(gaps) > 10 and max(gaps) < took / 3, (max(gaps), took)  # on the loop it would be one gap of `took`


async def test_a_reload_asked_by_a_signal_handler_runs_in_the_background(watcher: RulesWatcher, rules: Path) -> None:
    edit(rules, DENY_ADMIN)
    watcher.request_reload("SIGHUP")
    assert decide(watcher.policy, ADMIN).rule == "everyone"  # the handler returns at once
    for _ in range(500):
        if decide(watcher.policy, ADMIN).rule == "no-admin":
            break
        await asyncio.sleep(0.01)
    assert decide(watcher.policy, ADMIN).rule == "no-admin"
    assert not watcher.changed()


def test_an_edit_made_while_a_reload_runs_is_loaded_by_the_next_one(
    watcher: RulesWatcher, rules: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    edit(rules, DENY_ADMIN)

    def load_then_edit_again(path: Path) -> Policy:
        policy = load_policy(path)
        edit(rules, ALLOW_ALL)  # saved again while the first save was being compiled
        return policy

    monkeypatch.setattr("gate.policy.reload.load_policy", load_then_edit_again)
    assert watcher.reload("test") is True
    assert decide(watcher.policy, ADMIN).rule == "no-admin"
    assert watcher.changed()  # the second save is not taken for loaded
    monkeypatch.setattr("gate.policy.reload.load_policy", load_policy)
    assert watcher.reload("test") is True
    assert decide(watcher.policy, ADMIN).rule == "everyone"
