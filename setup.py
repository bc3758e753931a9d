"""gate's build: the modules every request runs through are compiled to C extensions by mypyc.

They are the same typed Python (mypy --strict); compiled, gate's workers spend 7-12 % less CPU per request with the
full pipeline under load, 21 % less at a moderate load (docs/benchmarks.md, "The request path compiled").
Everything else (start-up, the CLI, rules loading, gate's own pages) stays interpreted: it is not where a flood
spends gate's CPU.

GATE_PURE_PYTHON=1 builds without compiling, where no C compiler or Python headers are at hand, or to profile the
request path with py-spy (which cannot see into compiled functions). `make` installs what the compiler needs.
"""

from __future__ import annotations

import os

from setuptools import setup

# The request path: what a request that gate forwards or refuses runs, per request (see docs/architecture.md).
COMPILED = [
    "gate/connection.py",
    "gate/cycle.py",
    "gate/app.py",
    "gate/facts.py",
    "gate/net.py",
    "gate/fingerprint/__init__.py",
    "gate/fingerprint/agents.py",
    "gate/fingerprint/browsers.py",
    "gate/fingerprint/headers.py",
    "gate/policy/engine.py",
    "gate/policy/index.py",
    "gate/policy/model.py",
    "gate/policy/conditions.py",
    "gate/verify/__init__.py",
    "gate/challenge/budgets.py",
    "gate/challenge/service.py",
    "gate/challenge/signing.py",
    "gate/challenge/tokens.py",
    "gate/terms/service.py",
    "gate/throttle.py",
    "gate/local_quotas.py",
    "gate/store/base.py",
    "gate/store/gcra.py",
    "gate/budget.py",
    "gate/keys.py",
    "gate/later.py",
    "gate/site_load.py",
    "gate/proxy.py",
    "gate/upstream.py",
    "gate/responses.py",
    "gate/logs.py",
    "gate/metrics.py",
]


def extensions() -> list[object]:
    if os.environ.get("GATE_PURE_PYTHON", "") not in ("", "0"):
        return []
    from mypyc.build import mypycify  # a build requirement (pyproject.toml), needed only when compiling

    return list(mypycify(COMPILED, opt_level="3"))


setup(ext_modules=extensions())
