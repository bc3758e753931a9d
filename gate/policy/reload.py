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
        self._reloading = asyncio.Lock()  # one reload at a time, applied in the order asked
        self._requested: set[asyncio.Task[bool]] = set()
        metrics.record_rules(policy.version)

    def reload(self, reason: str) -> bool:
        """Load the rules again, here and now; True when the new policy is in place."""
        return self._apply(reason, self._load())

    async def reload_off_loop(self, reason: str) -> bool:
        """reload, with the rules compiled in a thread: building a policy takes half a second (the shipped agent and
        network lists), which on the event loop held up every request in flight. The loop keeps serving while it
        runs, slower (the GIL is shared), and the new policy is swapped in on the loop."""
        async with self._reloading:
            return self._apply(reason, await asyncio.to_thread(self._load))

    def request_reload(self, reason: str) -> None:
        """reload_off_loop from a signal handler, which cannot await."""
        task = asyncio.get_running_loop().create_task(self.reload_off_loop(reason))
        self._requested.add(task)
        task.add_done_callback(self._requested.discard)

    def _load(self) -> tuple[Snapshot, Policy | RulesError]:
        """What the rules compile to, and the files' state as the load began: an edit made while it ran (seconds, in
        a thread beside a busy loop) then differs from the snapshot kept, and the next check loads it."""
        before = snapshot(self.policy.files)
        try:
            return before, load_policy(self.path)
        except RulesError as error:
            return before, error

    def _apply(self, reason: str, loaded: tuple[Snapshot, Policy | RulesError]) -> bool:
        before, result = loaded
        if isinstance(result, RulesError):
            self._snapshot = before  # retry on the next edit, not every few seconds
            metrics.rules_reloads_total.labels("failure").inc()
            log.error(
                "rules reload (%s) failed, keeping version %s: %s",
                reason,
                self.policy.version,
                "; ".join(map(str, result.problems)),
                extra=event("rules-reload-failed", reason=reason, version=self.policy.version),
            )
            return False
        self.policy = result
        # Files the new rules read for the first time (a new import) are taken as they are now.
        self._snapshot = {path: before.get(path, state) for path, state in snapshot(result.files).items()}
        metrics.rules_reloads_total.labels("success").inc()
        metrics.record_rules(result.version)
        log.info(
            "rules reloaded (%s): version %s, %d rules",
            reason,
            result.version,
            len(result.rules),
            extra=event("rules-reloaded", reason=reason, version=result.version),
        )
        return True

    def changed(self) -> bool:
        return snapshot(self.policy.files) != self._snapshot

    async def watch(self, interval: float = WATCH_SECONDS) -> None:
        while True:
            await asyncio.sleep(interval)
            if self.changed():
                await self.reload_off_loop("a rules file changed")
