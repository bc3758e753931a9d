"""`gate audit`: read the logs, judge every line as gate would, add it all up."""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from pathlib import Path

from gate.audit.logs import LogFormat, Malformed, first_time, read_entries
from gate.audit.report import Audit
from gate.audit.simulate import Simulator, Unjudgeable
from gate.policy.engine import Policy
from gate.verify import Verifier


async def audit(
    paths: Sequence[Path],
    policy: Policy,
    formats: Sequence[LogFormat],
    rules: str,
    verifier: Verifier | None = None,
    upstream_robots: str = "",
    progress: Callable[[int], None] | None = None,
) -> Audit:
    simulator = Simulator(policy, verifier, upstream_robots)
    ordered = sorted(paths, key=lambda path: first_time(path, formats))
    result = Audit(files=[path.name for path in ordered], rules=rules)
    quiet = [logging.getLogger(name) for name in ("gate.throttle", "gate.store", "gate.verify")]
    for logger in quiet:  # the simulated bans and lookups are the report's business, not warnings
        logger.disabled = True
    try:
        for item in read_entries(ordered, formats, progress):
            if isinstance(item, Malformed):
                result.add_malformed(item)
                continue
            try:
                result.add(await simulator.judge(item))
            except Unjudgeable as error:
                result.add_malformed(Malformed(item.file, item.line, str(error), f"{item.ip} {item.target}"[:200]))
    finally:
        for logger in quiet:
            logger.disabled = False
    return result
