"""The request path as it ships: compiled by mypyc (setup.py), unless the install asked for pure Python; free of
the one construct the compiler reads differently from CPython; and its records' hand-written `__init__` (which the
compiler compiles, unlike the one a dataclass generates) in step with their fields."""

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


def field_default(value: ast.expr | None) -> str | None:
    if isinstance(value, ast.Call) and ast.unparse(value.func) == "field":
        value = next((keyword.value for keyword in value.keywords if keyword.arg == "default"), None)
    return None if value is None else ast.unparse(value)


def init_drift(source: str) -> list[str]:
    """Dataclasses declared `init=False` whose `__init__` does not take and set their fields, in order, with the
    same defaults: the compiled constructor would leave a new field unset, or give one another default."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if not isinstance(node, ast.ClassDef) or not any(
            isinstance(decorator, ast.Call)
            and any(keyword.arg == "init" and ast.unparse(keyword.value) == "False" for keyword in decorator.keywords)
            for decorator in node.decorator_list
        ):
            continue
        fields = [
            (statement.target.id, field_default(statement.value))
            for statement in node.body
            if isinstance(statement, ast.AnnAssign) and isinstance(statement.target, ast.Name)
        ]
        init = next((item for item in node.body if isinstance(item, ast.FunctionDef) and item.name == "__init__"), None)
        if init is None:
            found.append(f"{node.name}: no __init__")
            continue
        parameters = init.args.args[1:]
        defaults: list[ast.expr | None] = [None] * (len(parameters) - len(init.args.defaults)) + list(
            init.args.defaults
        )
        taken = [
            (parameter.arg, field_default(default)) for parameter, default in zip(parameters, defaults, strict=True)
        ]
        assigned = [
            (target.attr, ast.unparse(statement.value))
            for statement in init.body
            if isinstance(statement, ast.Assign)
            for target in statement.targets
            if isinstance(target, ast.Attribute) and ast.unparse(target.value) == "self"
        ]
        if taken != fields or assigned != [(name, name) for name, _ in fields]:
            found.append(f"{node.name}: fields {fields}, __init__ takes {taken} and sets {assigned}")
    return found


@pytest.mark.parametrize("source", compiled_sources(), ids=module_name)
def test_records_with_their_own_init_take_and_set_every_field(source: Path) -> None:
    assert init_drift(source.read_text()) == []


def test_an_init_out_of_step_with_its_fields_is_found() -> None:
    source = """
@dataclass(slots=True, init=False)
class Outcome:
    status: int
    error: str | None = None
    passed: bool = False

    def __init__(self, status: int, error: str | None = None, passed: bool = True) -> None:
        self.status = status
        self.error = error
        self.passed = passed


@dataclass(slots=True, init=False)
class Quota:
    key: str
    burst: int

    def __init__(self, key: str, burst: int) -> None:
        self.key = key
"""
    assert [problem.split(":")[0] for problem in init_drift(source)] == ["Outcome", "Quota"]


def test_the_build_sees_every_runtime_dependency() -> None:
    """mypyc compiles from the types mypy checks: a dependency missing from the build's environment is a type error
    there, and `pip install .` fails before it installs anything."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert set(project["project"]["dependencies"]) <= set(project["build-system"]["requires"])
