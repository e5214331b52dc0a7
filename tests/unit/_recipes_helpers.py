"""Helpers shared by the recipes tests: a copy of the minimal fixture project to mutate."""

from __future__ import annotations

import shutil
from pathlib import Path

MINIMAL = Path(__file__).resolve().parent.parent / "data" / "recipes" / "minimal"


def minimal_project(tmp_path: Path) -> Path:
    root = tmp_path / "project"
    shutil.copytree(MINIMAL, root, symlinks=True)
    return root


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path
