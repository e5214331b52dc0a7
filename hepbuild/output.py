"""Results for people and machines: steps, progress, GitLab sections, summary tables, --json.

Diagnostics (commands run, warnings) go to stderr; results go to stdout, so that
``hepbuild ... --json | jq`` always reads clean JSON.
"""

from __future__ import annotations

import json
import os
import sys
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import asdict, is_dataclass
from typing import Any, TextIO

from hepbuild.tools import redact


def in_gitlab_ci() -> bool:
    return os.environ.get("GITLAB_CI") == "true"


def warn(message: str) -> None:
    print(f"warning: {redact(message)}", file=sys.stderr, flush=True)


def info(message: str) -> None:
    print(redact(message), file=sys.stderr, flush=True)


def progress(done: int, total: int, message: str) -> None:
    """One line per event, ``[3/12] message``: readable in a terminal and in a CI log."""
    width = len(str(total))
    print(f"[{done:>{width}}/{total}] {redact(message)}", file=sys.stderr, flush=True)


def _section_name(name: str) -> str:
    return "".join(c if c.isalnum() or c in "_.-" else "_" for c in name)


@contextmanager
def section(name: str, title: str, *, collapsed: bool = True) -> Iterator[None]:
    """A GitLab collapsible section in CI; a plain header with its time elsewhere."""
    start = time.time()
    key = _section_name(name)
    if in_gitlab_ci():
        opts = "[collapsed=true]" if collapsed else ""
        print(
            f"\x1b[0Ksection_start:{int(start)}:{key}{opts}\r\x1b[0K{title}",
            file=sys.stderr,
            flush=True,
        )
    else:
        print(f"==> {title}", file=sys.stderr, flush=True)
    try:
        yield
    finally:
        elapsed = time.time() - start
        if in_gitlab_ci():
            print(
                f"\x1b[0Ksection_end:{int(time.time())}:{key}\r\x1b[0K", file=sys.stderr, flush=True
            )
        print(f"    {title}: {elapsed:.1f} s", file=sys.stderr, flush=True)


def to_jsonable(value: Any) -> Any:
    if is_dataclass(value) and not isinstance(value, type):
        return to_jsonable(asdict(value))
    if isinstance(value, Mapping):
        return {str(k): to_jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [to_jsonable(v) for v in value]
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    return value


def emit_json(value: Any, stream: TextIO | None = None) -> None:
    out = stream or sys.stdout
    out.write(json.dumps(to_jsonable(value), indent=2, sort_keys=True) + "\n")
    out.flush()


def format_table(rows: Sequence[Mapping[str, Any]], columns: Sequence[str]) -> str:
    """A plain aligned text table; empty cells print as ``-``."""
    cells = [[_cell(row.get(col)) for col in columns] for row in rows]
    widths = [max([len(col)] + [len(r[i]) for r in cells]) for i, col in enumerate(columns)]
    lines = [
        "  ".join(col.upper().ljust(w) for col, w in zip(columns, widths, strict=True)).rstrip()
    ]
    for r in cells:
        lines.append("  ".join(v.ljust(w) for v, w in zip(r, widths, strict=True)).rstrip())
    return "\n".join(lines)


def _cell(value: Any) -> str:
    if value is None or value == "":
        return "-"
    if isinstance(value, float):
        return f"{value:.1f}"
    return str(value)


def print_table(
    rows: Sequence[Mapping[str, Any]], columns: Sequence[str], stream: TextIO | None = None
) -> None:
    out = stream or sys.stdout
    out.write(format_table(rows, columns) + "\n")
    out.flush()


def human_size(size: int | None) -> str:
    if size is None:
        return "-"
    value = float(size)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if value < 1024 or unit == "GiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{value:.1f} GiB"


def short_digest(digest: str | None, length: int = 19) -> str:
    return digest[:length] if digest else "-"
