"""The request path as it ships: compiled by mypyc (setup.py), unless the install asked for pure Python; and free of
the one construct the compiler reads differently from CPython."""

from __future__ import annotations

import ast
import importlib
import os
import tomllib
from pathlib import Path

import pytest

from tests.support.compiled import ROOT, compiled_sources


def module_name(source: Path) -> str:
    parts = source.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


@pytest.mark.skipif(
    os.environ.get("GATE_PURE_PYTHON", "") not in ("", "0"), reason="installed without compiling (GATE_PURE_PYTHON)"
)
@pytest.mark.parametrize("source", compiled_sources(), ids=module_name)
def test_the_request_path_runs_compiled(source: Path) -> None:
    """The suite tests what a sysadmin runs: every module setup.py compiles is imported from its extension."""
    module = importlib.import_module(module_name(source))
    assert module.__file__ is not None and not module.__file__.endswith(".py"), module.__file__


def rebound_exception_names(source: str) -> list[str]:
    """Functions that bind one name to exceptions of different types in separate `except` clauses. mypyc gives a
    local one type, its first binding's, and raises TypeError when a later clause binds another type to it (for
    TimeoutError, then OSError: a refused connection became a 500)."""
    found = []
    for function in ast.walk(ast.parse(source)):
        if not isinstance(function, ast.FunctionDef | ast.AsyncFunctionDef):
            continue
        types: dict[str, set[str]] = {}
        for node in ast.walk(function):
            if isinstance(node, ast.ExceptHandler) and node.name and node.type is not None:
                types.setdefault(node.name, set()).add(ast.unparse(node.type))
        found += [f"{function.name}: {name}" for name, bound in types.items() if len(bound) > 1]
    return found


@pytest.mark.parametrize("source", compiled_sources(), ids=module_name)
def test_no_compiled_function_binds_one_name_to_two_exception_types(source: Path) -> None:
    assert rebound_exception_names(source.read_text()) == []


def test_a_name_bound_to_two_exception_types_is_found() -> None:
    source = """
async def open():
    try:
        connect()
    except TimeoutError as error:
        raise Slow() from error
    except OSError as error:
        raise Refused() from error
"""
    assert rebound_exception_names(source) == ["open: error"]


def test_the_build_sees_every_runtime_dependency() -> None:
    """mypyc compiles from the types mypy checks: a dependency missing from the build's environment is a type error
    there, and `pip install .` fails before it installs anything."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert set(project["project"]["dependencies"]) <= set(project["build-system"]["requires"])
