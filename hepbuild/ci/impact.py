"""From changed files to the cells they affect, each with the reason it is planned.

The rules, in the order a reader would guess them:
  hepbuild/**               every cell (the tool itself changed)
  a recipe's directory      that recipe's cells
  a template file           every cell that rendered it
  matrix.yaml               the cells whose entries changed (old and new matrix compared)
and afterwards, transitively, the cells built FROM a planned cell (same base and arch).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Sequence
from pathlib import PurePosixPath

from hepbuild.ci.project import Snapshot
from hepbuild.config.model import Base, Cell, Config, Profile

Reasons = dict[str, list[str]]  # cell id -> reasons, in the order they were found

TOOL_PREFIX = "hepbuild/"
TEMPLATES_DIR = "templates"


def add_reason(reasons: Reasons, cell_id: str, reason: str) -> None:
    found = reasons.setdefault(cell_id, [])
    if reason not in found:
        found.append(reason)


def affected_by_files(
    changed: Sequence[str], new: Snapshot, old: Snapshot | None, matrix_file: str
) -> Reasons:
    """``changed`` holds paths relative to the project root (where matrix.yaml lives)."""
    reasons: Reasons = {}
    tool_change = next((p for p in changed if p.startswith(TOOL_PREFIX)), None)
    if tool_change:
        for cell in new.cells:
            add_reason(reasons, cell.id, f"hepbuild itself changed ({tool_change})")

    recipe_dirs = _recipe_directories(new)
    templates_dir = templates_directory(new)
    templates = [p for p in changed if PurePosixPath(p).is_relative_to(templates_dir)]
    for path in changed:
        recipe_id = _recipe_of(path, recipe_dirs)
        if recipe_id:
            for cell in new.cells:
                if cell.recipe.id == recipe_id:
                    add_reason(reasons, cell.id, f"recipe {recipe_id} changed ({path})")
    if templates:
        _add_template_users(reasons, new, templates, templates_dir)
    if matrix_file in changed:
        for cell_id, reason in matrix_changes(old, new).items():
            add_reason(reasons, cell_id, reason)
    return reasons


def _recipe_directories(snapshot: Snapshot) -> dict[str, str]:
    """Recipe directory (relative, posix) -> recipe id."""
    root = snapshot.config.root
    dirs: dict[str, str] = {}
    for recipe in snapshot.config.recipes:
        directory = recipe.directory if recipe.directory.is_absolute() else root / recipe.directory
        dirs[directory.relative_to(root).as_posix()] = recipe.id
    return dirs


def _recipe_of(path: str, recipe_dirs: dict[str, str]) -> str | None:
    parts = PurePosixPath(path)
    for directory, recipe_id in recipe_dirs.items():
        if parts.is_relative_to(directory):
            return recipe_id
    return None


def templates_directory(snapshot: Snapshot) -> str:
    """The template directory relative to the project root (matrix.yaml may name its own)."""
    custom = snapshot.config.matrix.templates
    if custom is None:
        return TEMPLATES_DIR
    root = snapshot.config.root
    path = (custom if custom.is_absolute() else root / custom).resolve()
    try:
        return path.relative_to(root.resolve()).as_posix()
    except ValueError:  # outside the project: no change in this repository can touch it
        return path.as_posix()


def _add_template_users(
    reasons: Reasons, snapshot: Snapshot, templates: Iterable[str], templates_dir: str
) -> None:
    wanted = {PurePosixPath(t).relative_to(templates_dir).as_posix(): t for t in templates}
    for cell in snapshot.cells:
        used = {_template_name(t, templates_dir) for t in snapshot.templates(cell)}
        for name in sorted(used & wanted.keys()):
            add_reason(reasons, cell.id, f"template {wanted[name]} changed")


def _template_name(entry: str, templates_dir: str) -> str:
    """Renders may name a template from its directory or from the project root."""
    path = PurePosixPath(entry)
    if path.is_relative_to(templates_dir):
        return path.relative_to(templates_dir).as_posix()
    return entry


def matrix_changes(old: Snapshot | None, new: Snapshot) -> dict[str, str]:
    """Cells whose matrix.yaml entries differ between the two revisions."""
    if old is None:
        everything = "matrix.yaml is new or did not load at the diff base"
        return {cell.id: everything for cell in new.cells}
    changes: dict[str, str] = {}
    old_ids = {cell.id for cell in old.cells}
    profile_reason = _global_change(old.config, new.config)
    for cell in new.cells:
        reason = (
            profile_reason
            or (None if cell.id in old_ids else "added to the matrix in matrix.yaml")
            or _base_change(old.config.matrix.bases.get(cell.base.name), cell)
            or _override_change(old.config.profile, new.config.profile, cell)
        )
        if reason:
            changes[cell.id] = reason
    return changes


def _global_change(old: Config, new: Config) -> str | None:
    """Entries every cell's image depends on: the registry, templates and source stamp."""
    if old.profile.name != new.profile.name or old.profile.registry != new.profile.registry:
        return f"profile {new.profile.name}: target registry changed in matrix.yaml"
    if _own_templates(old) != _own_templates(new):
        return "the template directory changed in matrix.yaml"
    if old.matrix.source != new.matrix.source:
        return "the source stamped on images changed in matrix.yaml"
    return None


def _own_templates(config: Config) -> str | None:
    """matrix.yaml's template directory, relative to the project (the old one is in a temp dir)."""
    custom = config.matrix.templates
    if custom is None:
        return None
    path = custom if custom.is_absolute() else config.root / custom
    try:
        return path.resolve().relative_to(config.root.resolve()).as_posix()
    except ValueError:
        return str(custom)


def _base_change(old_base: Base | None, cell: Cell) -> str | None:
    new_base = cell.base
    if old_base is None:
        return None  # a new base: its cells are new ids, reported as added
    arch = cell.arch.name
    if _without_images(old_base) != _without_images(new_base):
        return f"base {new_base.name} changed in matrix.yaml"
    if old_base.images.get(arch) != new_base.images.get(arch):
        return f"base {new_base.name} image for {arch} changed in matrix.yaml"
    return None


def _without_images(base: Base) -> Base:
    """What every cell of a base shares; an added or dropped arch only adds or drops cells."""
    return dataclasses.replace(base, arches=(), images={}, line=None)


def _override_change(old: Profile, new: Profile, cell: Cell) -> str | None:
    base, arch = cell.base.name, cell.arch.name
    if old.bases.get(base, {}).get(arch) != new.bases.get(base, {}).get(arch):
        return f"profile {new.name}: base image override for {base}/{arch} changed"
    return None


def add_dependents(reasons: Reasons, snapshot: Snapshot) -> None:
    """Plan every cell built FROM a planned cell, transitively, whatever the cell order."""
    grew = True
    while grew:
        grew = False
        for cell in snapshot.cells:
            parent_id = parent_cell_id(cell)
            if parent_id in reasons and cell.id not in reasons:
                add_reason(reasons, cell.id, f"parent {parent_id} is planned")
                grew = True


def parent_cell_id(cell: Cell) -> str | None:
    """The cell this one is built FROM: the parent recipe, same base and arch."""
    parent = cell.recipe.depends_on
    return f"{parent}-{cell.base.name}-{cell.arch.name}" if parent else None
