"""Keeping the policy current: reload on SIGHUP or when a rules file changes, atomically.

A reload compiles a whole new Policy and swaps one reference; requests in flight keep the policy they started
with. A broken edit never replaces a working policy: the old one keeps running and the log says why.
"""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

from gate import metrics
from gate.logs import event
from gate.policy.engine import Policy
from gate.policy.load import load_policy
from gate.policy.source import RulesError

log = logging.getLogger("gate.rules")
WATCH_SECONDS = 2.0

Snapshot = dict[Path, tuple[int, int]]


def snapshot(files: tuple[Path, ...]) -> Snapshot:
    """Modification time and size of every rules file and of the folders holding them (a new file in a folder
    a glob reads changes the folder)."""
    state: Snapshot = {}
    for path in {*files, *(file.parent for file in files)}:
        try:
            stat = path.stat()
        except OSError:
            state[path] = (-1, -1)
        else:
            state[path] = (stat.st_mtime_ns, stat.st_size)
    return state


class RulesWatcher:
    def __init__(self, path: Path, policy: Policy) -> None:
        self.path = path
        self.policy = policy
        self._snapshot = snapshot(policy.files)
        metrics.record_rules(policy.version)

    def reload(self, reason: str) -> bool:
        """Load the rules again; True when the new policy is in place."""
        try:
            policy = load_policy(self.path)
        except RulesError as error:
            self._snapshot = snapshot(self.policy.files)  # retry on the next edit, not every few seconds
            metrics.rules_reloads_total.labels("failure").inc()
            log.error(
                "rules reload (%s) failed, keeping version %s: %s",
                reason,
                self.policy.version,
                "; ".join(map(str, error.problems)),
                extra=event("rules-reload-failed", reason=reason, version=self.policy.version),
            )
            return False
        self.policy = policy
        self._snapshot = snapshot(policy.files)
        metrics.rules_reloads_total.labels("success").inc()
        metrics.record_rules(policy.version)
        log.info(
            "rules reloaded (%s): version %s, %d rules",
            reason,
            policy.version,
            len(policy.rules),
            extra=event("rules-reloaded", reason=reason, version=policy.version),
        )
        return True

    def changed(self) -> bool:
        return snapshot(self.policy.files) != self._snapshot

    async def watch(self, interval: float = WATCH_SECONDS) -> None:
        while True:
            await asyncio.sleep(interval)
            if self.changed():
                self.reload("a rules file changed")
