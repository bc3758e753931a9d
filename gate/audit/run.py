"""`gate audit`: read the logs, judge every line as gate would, add it all up."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

from gate.audit.logs import LogFormat, Malformed, read_entries
from gate.audit.report import Audit
from gate.audit.simulate import Simulator
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
    result = Audit(files=[path.name for path in paths], rules=rules)
    for item in read_entries(paths, formats, progress):
        if isinstance(item, Malformed):
            result.add_malformed(item)
            continue
        judged = await simulator.judge(item)
        if judged is None:
            result.add_malformed(Malformed("", 0, "the address is not an IP address", item.ip[:200]))
        else:
            result.add(judged)
    return result
