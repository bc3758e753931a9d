"""The policy: rules that turn Facts and Signals into a Decision."""

from __future__ import annotations

from importlib import resources
from pathlib import Path


def shipped_rules() -> Path:
    """The rules/ directory installed as the package gate.rules (see pyproject.toml)."""
    return Path(str(resources.files("gate.rules")))
