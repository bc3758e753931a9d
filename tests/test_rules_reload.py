"""A running gate picks up edited rules (on SIGHUP, or by itself within seconds) and survives a broken edit."""

from __future__ import annotations

import re
import signal
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest

from tests.support.gate_process import GateProcess, start_gate
from tests.support.nginx import Nginx

DENY_ESSAYS = """
import: [shipped:default.yaml]
rules:
  - name: no-essays
    match: {path: /essays/**}
    action: deny
    status: 451
"""
ALLOW_ALL = """
agents: [shipped:agents/*.yaml]
default: {action: allow}
"""


@pytest.fixture
def rules_file(tmp_path: Path) -> Path:
    path = tmp_path / "rules.yaml"
    path.write_text(ALLOW_ALL)
    return path


@pytest.fixture
def gate_with_rules(tmp_path: Path, nginx: Nginx, rules_file: Path) -> Iterator[GateProcess]:
    process = start_gate(tmp_path / "gate", nginx.url, "--rules", str(rules_file))
    yield process
    process.stop()


def eventually(check: Callable[[], bool], seconds: float = 6.0) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(0.2)
    return False


def essay_status(gate: GateProcess) -> int:
    return httpx.get(gate.url + "/essays/one.html").status_code


def test_an_edited_rules_file_is_picked_up_without_a_signal(gate_with_rules: GateProcess, rules_file: Path) -> None:
    assert essay_status(gate_with_rules) == 404  # allowed through to nginx, which has no such page
    rules_file.write_text(DENY_ESSAYS)
    assert eventually(lambda: essay_status(gate_with_rules) == 451)
    reloads = [line for line in gate_with_rules.log_lines() if line.get("event") == "rules-reloaded"]
    assert reloads and reloads[-1]["reason"] == "a rules file changed" and len(reloads[-1]["version"]) >= 8


def test_a_broken_edit_keeps_the_running_rules(gate_with_rules: GateProcess, rules_file: Path) -> None:
    rules_file.write_text(DENY_ESSAYS)
    assert eventually(lambda: essay_status(gate_with_rules) == 451)
    rules_file.write_text(DENY_ESSAYS.replace("action: deny", "action: dney"))
    assert eventually(
        lambda: any(
            "rules reload" in line.get("message", "") and "dney" in line["message"]
            for line in gate_with_rules.log_lines()
        )
    )
    assert essay_status(gate_with_rules) == 451
    assert any(line.get("event") == "rules-reload-failed" for line in gate_with_rules.log_lines())
    metrics = httpx.get(gate_with_rules.metrics_url + "/metrics").text
    assert 'gate_rules_reloads_total{outcome="failure"}' in metrics


def test_sighup_reloads_at_once(gate_with_rules: GateProcess, rules_file: Path) -> None:
    rules_file.write_text(DENY_ESSAYS)
    gate_with_rules.process.send_signal(signal.SIGHUP)
    assert eventually(lambda: essay_status(gate_with_rules) == 451, seconds=1.5)
    assert gate_with_rules.process.poll() is None


def test_gate_refuses_to_start_on_broken_rules(tmp_path: Path, nginx: Nginx) -> None:
    broken = tmp_path / "broken.yaml"
    broken.write_text("rules:\n  - name: x\n    action: allow\n    mtch: {path: /}\n")
    with pytest.raises(RuntimeError, match=r"broken.yaml:4: unknown key 'mtch'"):
        start_gate(tmp_path / "gate", nginx.url, "--rules", str(broken))


def test_the_rules_version_metric_follows_a_reload(gate_with_rules: GateProcess, rules_file: Path) -> None:
    def versions() -> dict[str, float]:
        metrics = httpx.get(gate_with_rules.metrics_url + "/metrics").text
        found = re.findall(r'^gate_rules_info\{version="(\w+)"\} (\S+)$', metrics, re.MULTILINE)
        return {version: float(value) for version, value in found}

    before = versions()
    rules_file.write_text(DENY_ESSAYS)
    gate_with_rules.process.send_signal(signal.SIGHUP)
    assert eventually(lambda: essay_status(gate_with_rules) == 451, seconds=1.5)
    after = versions()
    assert [version for version, value in after.items() if value == 1] != [v for v, x in before.items() if x == 1]
    assert sum(after.values()) == 1
