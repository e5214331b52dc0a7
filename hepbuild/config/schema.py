"""The published JSON Schemas (schemas/*.schema.json), and their errors turned into Problems.

The schemas are the first, structural check of every file; load.py then checks meaning
(known arches and bases, files inside the recipe, depends_on). Each schema error is
reported at the line of the value it is about.
"""

from __future__ import annotations

import json
import re
from functools import cache
from pathlib import Path
from typing import Any

from jsonschema import Draft202012Validator
from jsonschema.exceptions import ValidationError

from hepbuild.config.document import Document
from hepbuild.errors import Problem

SCHEMA_DIR = Path(__file__).resolve().parent.parent.parent / "schemas"
SCHEMA_FILES = {"matrix": "matrix.schema.json", "recipe": "recipe.schema.json"}

_UNEXPECTED = re.compile(r"'([^']+)'")


def schema_path(kind: str) -> Path:
    return SCHEMA_DIR / SCHEMA_FILES[kind]


@cache
def validator(kind: str) -> Draft202012Validator:
    schema = json.loads(schema_path(kind).read_text(encoding="utf-8"))
    Draft202012Validator.check_schema(schema)
    return Draft202012Validator(schema)


def validate(kind: str, doc: Document) -> list[Problem]:
    """Every schema error of ``doc``, sorted by line."""
    errors = sorted(validator(kind).iter_errors(doc.data), key=lambda e: list(map(str, e.path)))
    problems = [p for error in errors for p in _problems_for(doc, error)]
    return sorted(problems, key=lambda p: (p.line or 0, p.message))


def _problems_for(doc: Document, error: ValidationError) -> list[Problem]:
    path = tuple(error.absolute_path)
    if error.validator == "additionalProperties" and isinstance(error.instance, dict):
        allowed = sorted(error.schema.get("properties", {}))
        hint = f"valid keys here: {', '.join(allowed)}" if allowed else None
        extra = [k for k in error.instance if k not in error.schema.get("properties", {})]
        return [doc.problem(path + (k,), f"unknown key {k!r}", hint) for k in extra]
    return [doc.problem(path, _message(error, path), _hint(error))]


def _message(error: ValidationError, path: tuple[Any, ...]) -> str:
    where = ".".join(str(p) for p in path) or "the top level"
    if error.validator == "required":
        return f"{where}: {error.message}"
    if error.validator in ("oneOf", "anyOf"):
        return f"{where}: must be a string (shell form) or a list of strings (exec form)"
    return f"{where}: {error.message}"


_TYPE_WORDS = {"array": "a list", "object": "a mapping", "string": "text", "integer": "a whole "
               "number", "number": "a number", "boolean": "true or false"}


def _hint(error: ValidationError) -> str | None:
    if error.validator == "required":
        missing = _UNEXPECTED.search(error.message)
        return f"add `{missing.group(1)}:`" if missing else None
    if error.validator == "type":
        wanted = error.validator_value
        names = [str(w) for w in (wanted if isinstance(wanted, list) else [wanted])]
        words = [_TYPE_WORDS.get(name, name) for name in names]
        return "write it as " + " or ".join(words)
    if error.validator == "enum":
        return "use one of: " + ", ".join(map(str, error.validator_value))
    if error.validator == "pattern":
        described = error.schema.get("description") if isinstance(error.schema, dict) else None
        return described or f"it must match {error.validator_value}"
    description = error.schema.get("description") if isinstance(error.schema, dict) else None
    return description


def valid_part(kind: str, doc: Document) -> Document:
    """``doc`` without every value the schema refuses, so that the meaning checks can still
    run on the rest and ``lint`` reports every problem at once. List items that are dropped
    shift the later ones down; their lines move with them, so problems still name the right
    line. Keys a ``required`` error asks for are simply absent: the checks use ``.get``."""
    refused: set[tuple[Any, ...]] = set()
    for error in validator(kind).iter_errors(doc.data):
        path = tuple(error.absolute_path)
        if error.validator == "required":
            continue
        if error.validator == "additionalProperties" and isinstance(error.instance, dict):
            known = error.schema.get("properties", {})
            refused.update(path + (k,) for k in error.instance if k not in known)
            continue
        refused.add(path)
    if () in refused:
        return Document(doc.file, None, {})
    lines: dict[tuple[Any, ...], int] = {}
    data = _kept(doc, doc.data, (), (), refused, lines)
    return Document(doc.file, data, lines)


def _kept(doc: Document, value: Any, old: tuple[Any, ...], new: tuple[Any, ...],
          refused: set[tuple[Any, ...]], lines: dict[tuple[Any, ...], int]) -> Any:
    if isinstance(value, dict):
        result = {}
        for key, child in value.items():
            if old + (key,) in refused:
                continue
            lines[new + (key,)] = doc.line(old + (key,))
            result[key] = _kept(doc, child, old + (key,), new + (key,), refused, lines)
        return result
    if isinstance(value, list):
        items: list[Any] = []
        for index, child in enumerate(value):
            if old + (index,) in refused:
                continue
            place = new + (len(items),)
            lines[place] = doc.line(old + (index,))
            items.append(_kept(doc, child, old + (index,), place, refused, lines))
        return items
    return value
