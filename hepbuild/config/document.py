"""YAML documents that remember where each value was written.

PyYAML's node tree carries marks; we keep the line of every mapping key and sequence item
under its path (``("bases", "sl7", "arches", 0)``), so that a schema error or a semantic
problem found much later can still name ``matrix.yaml:42``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from hepbuild.errors import Problem

PathKey = tuple[str | int, ...]

_Loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


@dataclass(frozen=True)
class Document:
    file: str  # as shown to the user (relative to the project root where possible)
    data: Any
    lines: dict[PathKey, int]

    def line(self, path: PathKey) -> int:
        """Line of ``path`` or of its nearest ancestor that has one (1 for the top)."""
        for cut in range(len(path), 0, -1):
            found = self.lines.get(tuple(path[:cut]))
            if found is not None:
                return found
        return 1

    def problem(self, path: PathKey, message: str, hint: str | None = None) -> Problem:
        return Problem(self.file, self.line(path), message, hint)


def read_document(path: Path, shown_as: str, problems: list[Problem]) -> Document | None:
    """Parse one YAML file. A parse error becomes a Problem with its line; returns None."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        problems.append(Problem(shown_as, None, f"cannot read: {exc}", "check the file"))
        return None
    try:
        node = yaml.compose(text, Loader=_Loader)
    except yaml.MarkedYAMLError as exc:
        problems.append(_parse_problem(shown_as, exc))
        return None
    except yaml.YAMLError as exc:
        problems.append(Problem(shown_as, None, f"not valid YAML: {exc}"))
        return None
    if node is None:
        return Document(shown_as, None, {})
    lines: dict[PathKey, int] = {}
    try:
        data = _convert(node, (), lines, shown_as, problems)
    except yaml.YAMLError as exc:  # e.g. a bad !!tag or an unreadable timestamp
        problems.append(_parse_problem(shown_as, exc))
        return None
    return Document(shown_as, data, lines)


def _parse_problem(shown_as: str, exc: yaml.YAMLError) -> Problem:
    mark = getattr(exc, "problem_mark", None) or getattr(exc, "context_mark", None)
    line = mark.line + 1 if mark is not None else None
    what = getattr(exc, "problem", None) or str(exc)
    return Problem(shown_as, line, f"not valid YAML: {what}",
                   "check indentation, quoting and colons on this line")


_SCALARS = yaml.constructor.SafeConstructor()


class _RecursiveAlias(yaml.YAMLError):
    def __init__(self, node: yaml.Node) -> None:
        super().__init__("an alias refers to a node that contains it")
        self.problem_mark = node.start_mark
        self.problem = "an alias refers to a node that contains it (a recursive structure)"


def _convert(node: yaml.Node, path: PathKey, lines: dict[PathKey, int],
             shown_as: str, problems: list[Problem], inside: tuple[int, ...] = ()) -> Any:
    if id(node) in inside:
        raise _RecursiveAlias(node)
    inside = inside + (id(node),)
    if isinstance(node, yaml.MappingNode):
        return _convert_mapping(node, path, lines, shown_as, problems, inside)
    if isinstance(node, yaml.SequenceNode):
        items = []
        for index, child in enumerate(node.value):
            lines[path + (index,)] = child.start_mark.line + 1
            items.append(_convert(child, path + (index,), lines, shown_as, problems, inside))
        return items
    return _SCALARS.construct_object(node, deep=True)


def _convert_mapping(node: yaml.MappingNode, path: PathKey, lines: dict[PathKey, int],
                     shown_as: str, problems: list[Problem],
                     inside: tuple[int, ...]) -> dict[Any, Any]:
    result: dict[Any, Any] = {}
    for key_node, value_node in node.value:
        key = _SCALARS.construct_object(key_node, deep=True)
        if isinstance(key, list | dict):
            problems.append(Problem(shown_as, key_node.start_mark.line + 1,
                                    "a key must be a plain value", "write it as text"))
            continue
        key = str(key) if not isinstance(key, str) else key
        line = key_node.start_mark.line + 1
        if key in result:
            problems.append(Problem(shown_as, line, f"duplicate key {key!r}",
                                    f"it is already set at line {lines[path + (key,)]}"))
        lines[path + (key,)] = line
        result[key] = _convert(value_node, path + (key,), lines, shown_as, problems, inside)
    return result
