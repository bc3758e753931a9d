"""Which of gate's modules setup.py compiles with mypyc, and whether the compiled copies in the checkout are current.

An editable install builds the C extensions next to their sources, and Python imports an extension before a `.py`
of the same name: after an edit, the tests would run the code as it was at the last install.
"""

from __future__ import annotations

import ast
import importlib.machinery
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def compiled_sources() -> list[Path]:
    """setup.py's COMPILED list, read without running setup.py (which builds)."""
    tree = ast.parse((ROOT / "setup.py").read_text())
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(
            isinstance(target, ast.Name) and target.id == "COMPILED" for target in node.targets
        ):
            return [ROOT / path for path in ast.literal_eval(node.value)]
    raise LookupError("setup.py has no COMPILED list")


def extension_of(source: Path) -> Path | None:
    """The compiled module built from `source` in the checkout, if there is one."""
    for suffix in importlib.machinery.EXTENSION_SUFFIXES:
        candidate = source.with_name(source.stem + suffix)
        if candidate.exists():
            return candidate
    return None


def stale_extensions() -> list[Path]:
    """Compiled modules older than a source of gate's: any change can alter what the compiled ones were built on."""
    built = [extension for source in compiled_sources() if (extension := extension_of(source)) is not None]
    if not built:
        return []
    newest_source = max(path.stat().st_mtime for path in [*(ROOT / "gate").rglob("*.py"), ROOT / "setup.py"])
    return [extension for extension in built if extension.stat().st_mtime < newest_source]
