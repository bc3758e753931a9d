"""Reading rule files: YAML that remembers line numbers, and errors reported as `file:line: message`.

Every problem in every file is collected and reported together; unknown keys are problems, never ignored.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import yaml

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Problem:
    file: str
    line: int
    message: str

    def __str__(self) -> str:
        return f"{self.file}:{self.line}: {self.message}"


class RulesError(Exception):
    """The rules cannot be loaded; `problems` holds every `file:line: message` found."""

    def __init__(self, problems: list[Problem]) -> None:
        super().__init__("\n".join(str(problem) for problem in problems))
        self.problems = problems


class LineDict(dict[str, Any]):
    """A YAML mapping with the line of the mapping and of each key (1-based)."""

    line = 0

    def __init__(self) -> None:
        super().__init__()
        self.key_lines: dict[str, int] = {}  # per mapping: an empty file's document has none, but is asked


class LineList(list[Any]):
    """A YAML sequence with the line of the sequence and of each item (1-based)."""

    line = 0
    item_lines: list[int]


# libyaml's parser when PyYAML was built with it (the wheels are): the pure-Python one took most of gate's start,
# in each worker, and most of every rules reload. Both give nodes their marks.
if yaml.__with_libyaml__:

    class _Loader(yaml.CSafeLoader):
        pass

else:  # pragma: no cover - PyYAML built without libyaml

    class _Loader(yaml.SafeLoader):  # type: ignore[no-redef]
        pass


def _construct_mapping(loader: _Loader, node: yaml.MappingNode) -> LineDict:
    loader.flatten_mapping(node)
    mapping = LineDict()
    mapping.line = node.start_mark.line + 1
    for key_node, value_node in node.value:
        key = loader.construct_object(key_node, deep=True)
        if not isinstance(key, str):
            key = str(key)
        line = key_node.start_mark.line + 1
        if key in mapping:
            raise yaml.MarkedYAMLError(problem=f"duplicate key {key!r}", problem_mark=key_node.start_mark)
        mapping[key] = loader.construct_object(value_node, deep=True)
        mapping.key_lines[key] = line
    return mapping


def _construct_sequence(loader: _Loader, node: yaml.SequenceNode) -> LineList:
    items = LineList(loader.construct_object(child, deep=True) for child in node.value)
    items.line = node.start_mark.line + 1
    items.item_lines = [child.start_mark.line + 1 for child in node.value]
    return items


_Loader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)
_Loader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_SEQUENCE_TAG, _construct_sequence)


def read_yaml(path: Path, problems: list[Problem]) -> Any:
    """The document in `path`, or None (with a problem recorded) when it cannot be read or parsed."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        problems.append(Problem(str(path), 0, f"cannot read: {error}"))
        return None
    try:
        return yaml.load(text, Loader=_Loader)  # noqa: S506 - _Loader builds with the SafeConstructor
    except yaml.MarkedYAMLError as error:
        mark = error.problem_mark or error.context_mark
        line = mark.line + 1 if mark is not None else 0
        problems.append(Problem(str(path), line, f"invalid YAML: {error.problem or error.context}"))
    except yaml.YAMLError as error:
        problems.append(Problem(str(path), 0, f"invalid YAML: {error}"))
    except RecursionError:
        problems.append(Problem(str(path), 0, "invalid YAML: nested too deeply"))
    except (ValueError, AttributeError) as error:  # a scalar PyYAML's constructors recognise but cannot build:
        # 2026-13-45 or a 5000-digit integer (ValueError), `!!timestamp x` (AttributeError)
        problems.append(Problem(str(path), 0, f"invalid YAML: {error}"))
    return None


class Section:
    """Typed, line-aware access to one mapping of a rules file. Every key must be taken or it is reported."""

    def __init__(self, data: LineDict, file: str, problems: list[Problem], what: str) -> None:
        self.data = data
        self.file = file
        self.problems = problems
        self.what = what
        self._taken: set[str] = set()

    @classmethod
    def of(cls, value: Any, file: str, line: int, problems: list[Problem], what: str) -> Section | None:
        if not isinstance(value, LineDict):
            problems.append(Problem(file, line, f"{what} must be a mapping"))
            return None
        return cls(value, file, problems, what)

    @property
    def line(self) -> int:
        return self.data.line

    def line_of(self, key: str) -> int:
        return self.data.key_lines.get(key, self.data.line)

    def problem(self, key: str | None, message: str) -> None:
        self.problems.append(Problem(self.file, self.line_of(key) if key else self.line, message))

    def has(self, key: str) -> bool:
        return key in self.data

    def raw(self, key: str) -> Any:
        self._taken.add(key)
        return self.data.get(key)

    def get(self, key: str, kind: type[T], default: T) -> T:
        self._taken.add(key)
        if key not in self.data:
            return default
        value = self.data[key]
        if kind is float and isinstance(value, int) and not isinstance(value, bool):
            try:
                value = float(value)
            except OverflowError:
                self.problem(key, f"{key}: expected a number, got one too large")
                return default
        if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
            self.problem(key, f"{key}: expected {_kind_name(kind)}, got {_describe(value)}")
            return default
        return value

    def child(self, key: str, what: str | None = None) -> Section | None:
        """The mapping under `key`; None when it is absent or empty, and a problem when it is not a mapping."""
        value = self.raw(key)
        if value is None:
            return None
        return Section.of(value, self.file, self.line_of(key), self.problems, what or key)

    def strings(self, key: str) -> list[str]:
        """A string or a list of strings, as a list."""
        self._taken.add(key)
        value = self.data.get(key)
        if value is None:
            return []
        values = [value] if isinstance(value, str) else value
        if not isinstance(values, list) or not all(isinstance(item, str) for item in values):
            self.problem(key, f"{key}: expected a string or a list of strings, got {_describe(value)}")
            return []
        return list(values)

    def parsed(self, key: str, parse: Callable[[Any], T]) -> T | None:
        """A value converted by `parse`; its ValueError becomes a problem at the key's line."""
        self._taken.add(key)
        if key not in self.data:
            return None
        try:
            return parse(self.data[key])
        except ValueError as error:
            self.problem(key, f"{key}: {error}")
            return None

    def finish(self) -> None:
        """Report every key nobody asked for: a misspelt key must not silently do nothing."""
        for key in self.data:
            if key not in self._taken:
                self.problem(key, f"unknown key {key!r} in {self.what}")


def _kind_name(kind: type) -> str:
    return {str: "a string", int: "a whole number", float: "a number", bool: "true or false"}.get(
        kind, "a " + kind.__name__
    )


def _describe(value: Any) -> str:
    if isinstance(value, LineDict):
        return "a mapping"
    if isinstance(value, LineList):
        return "a list"
    return repr(value)
