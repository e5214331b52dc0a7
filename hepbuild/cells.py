"""Expanding the matrix into cells (recipe x base x arch), with a reason for every cell dropped.

Order is deterministic and puts parents first: recipes by dependency depth then id, bases in
matrix.yaml order, arches in the matrix's arch order. A builder can walk the list top down.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from fnmatch import fnmatchcase

from hepbuild import naming
from hepbuild.config.model import Cell, Config, Recipe, Rule
from hepbuild.errors import ConfigError, Problem, UsageError


@dataclass(frozen=True)
class Dropped:
    cell_id: str
    reason: str


@dataclass(frozen=True)
class Expansion:
    cells: list[Cell]
    dropped: list[Dropped]


def recipe_order(config: Config) -> list[Recipe]:
    """Parents before children: by depth in the depends_on chain, then by id."""
    by_id = {r.id: r for r in config.recipes}

    def depth(recipe: Recipe) -> int:
        steps = 0
        while recipe.depends_on in by_id and steps <= len(by_id):
            recipe = by_id[recipe.depends_on]
            steps += 1
        return steps

    return sorted(config.recipes, key=lambda r: (depth(r), r.id))


def expand_matrix(config: Config) -> Expansion:
    cells: list[Cell] = []
    dropped: list[Dropped] = []
    built: set[str] = set()
    reasons: dict[str, str] = {}
    for recipe in recipe_order(config):
        for base in config.matrix.bases.values():
            for arch in config.matrix.arches:
                cell = Cell(recipe, base, arch)
                reason = drop_reason(config, cell, built, reasons)
                if reason is None:
                    cells.append(cell)
                    built.add(cell.id)
                else:
                    dropped.append(Dropped(cell.id, reason))
                    reasons[cell.id] = reason
    return Expansion(cells=cells, dropped=dropped)


def drop_reason(config: Config, cell: Cell, built: set[str] | None = None,
                reasons: dict[str, str] | None = None) -> str | None:
    """Why ``cell`` is not built, or None. ``built`` holds ids already kept (for parents)."""
    reason = _availability(config, cell) or _rules(config, cell)
    if reason or not cell.recipe.depends_on or built is None:
        return reason
    parent_id = _parent_id(cell)
    if parent_id in built:
        return None
    why = (reasons or {}).get(parent_id)
    suffix = f" ({why})" if why else ""
    return f"its parent cell {parent_id} is not built{suffix}"


def _availability(config: Config, cell: Cell) -> str | None:
    recipe, base, arch, profile = cell.recipe, cell.base, cell.arch, config.profile
    if arch.name not in base.arches:
        return f"{base.name} has no {arch.name} build"
    if recipe.bases and base.name not in recipe.bases:
        listed = ", ".join(recipe.bases)
        return f"recipe {recipe.id} is not made for {base.name} (bases: {listed})"
    if recipe.arches and arch.name not in recipe.arches:
        listed = ", ".join(recipe.arches)
        return f"recipe {recipe.id} is not made for {arch.name} (arches: {listed})"
    if profile.bases_enabled and base.name not in profile.bases_enabled:
        return f"profile {profile.name} builds only {', '.join(profile.bases_enabled)}"
    if profile.arches_enabled and arch.name not in profile.arches_enabled:
        return f"profile {profile.name} builds only arches {', '.join(profile.arches_enabled)}"
    return None


def matching_rules(config: Config, cell: Cell) -> list[Rule]:
    return [rule for rule in config.matrix.rules if _rule_matches(rule, cell)]


def _rule_matches(rule: Rule, cell: Cell) -> bool:
    return (fnmatchcase(cell.recipe.id, rule.recipe) and fnmatchcase(cell.base.name, rule.base)
            and fnmatchcase(cell.arch.name, rule.arch))


def _rules(config: Config, cell: Cell) -> str | None:
    decisive = matching_rules(config, cell)
    if not decisive or decisive[-1].action == "include":
        return None
    rule = decisive[-1]
    return f"excluded by rule at {config.matrix.path.name}:{rule.line}: {rule.reason}"


def _parent_id(cell: Cell) -> str:
    return f"{cell.recipe.depends_on}-{cell.base.name}-{cell.arch.name}"


def parent_cell(config: Config, cell: Cell) -> Cell | None:
    """The cell a child recipe builds FROM: same base and arch. None for a top-level recipe."""
    if not cell.recipe.depends_on:
        return None
    parent = Cell(config.recipe(cell.recipe.depends_on), cell.base, cell.arch)
    reason = drop_reason(config, parent)
    if reason is None:
        parent_cell(config, parent)  # a broken chain further up raises here
        return parent
    raise ConfigError([Problem(_recipe_file(cell.recipe), None,
                               f"cell {cell.id} needs parent cell {parent.id}, which is not built: "
                               f"{reason}", f"add {cell.base.name}/{cell.arch.name} to "
                               f"{parent.recipe.id} or drop it from {cell.recipe.id}")])


def _recipe_file(recipe: Recipe) -> str:
    return f"recipes/{recipe.id}/recipe.yaml"


def base_image(config: Config, cell: Cell) -> str:
    """The image a cell builds FROM: a parent's image, a profile override or the base's."""
    parent = parent_cell(config, cell)
    if parent is not None:
        return naming.arch_ref(config.profile.registry, parent)
    override = config.profile.bases.get(cell.base.name, {}).get(cell.arch.name)
    return override or cell.base.images[cell.arch.name]


def matrix_entries(config: Config, cell: Cell) -> tuple[str, ...]:
    """The matrix.yaml entries whose change can change this cell (for the CI planner)."""
    entries = ["arches", f"bases.{cell.base.name}", f"profiles.{config.profile.name}"]
    entries += [f"rules[{config.matrix.rules.index(rule)}]"
                for rule in matching_rules(config, cell)]
    if cell.arch.name in config.matrix.runners:
        entries.append(f"runners.{cell.arch.name}")
    if config.matrix.templates is not None:
        entries.append("templates")
    if config.matrix.source is not None:
        entries.append("source")
    return tuple(entries)


def select_cells(cells: Sequence[Cell], patterns: Iterable[str],
                 named_by: str = "--select") -> list[Cell]:
    """Cells whose id (or recipe id, or image key) matches any glob; each glob must match.
    ``named_by`` is how the user gave the globs ("--select", or "CELL argument" for positional
    ones), so that the error speaks of what they typed."""
    patterns = list(patterns)
    if not patterns:
        return list(cells)
    for pattern in patterns:
        if not any(_selects(pattern, cell) for cell in cells):
            raise _nothing_selected(pattern, cells, named_by)
    return [cell for cell in cells if any(_selects(p, cell) for p in patterns)]


def select_dropped(dropped: Sequence[Dropped], patterns: Iterable[str]) -> list[Dropped]:
    """The dropped cells a --select would have picked (no error when none match)."""
    patterns = list(patterns)
    if not patterns:
        return list(dropped)
    return [d for d in dropped
            if any(fnmatchcase(d.cell_id, p) or fnmatchcase(d.cell_id, p + "-*") for p in patterns)]


def _selects(pattern: str, cell: Cell) -> bool:
    return any(fnmatchcase(name, pattern) for name in (cell.id, cell.image_key, cell.recipe.id))


def _nothing_selected(pattern: str, cells: Sequence[Cell], named_by: str) -> UsageError:
    ids = [c.id for c in cells]
    near = difflib.get_close_matches(pattern, ids, n=5, cutoff=0.5)
    stem = pattern.strip("*?").split("-")[0]
    if not near and stem:
        near = [i for i in ids if stem in i][:5]
    hint = ("near matches: " + ", ".join(near)) if near else "run `hepbuild matrix` to list cells"
    return UsageError(f"{named_by} {pattern!r} matches no cell", hint)


def describe_cell(cell: Cell, config: Config) -> dict[str, str | None]:
    parent = parent_cell(config, cell)
    return {
        "cell": cell.id, "recipe": cell.recipe.id, "base": cell.base.name,
        "arch": cell.arch.name, "platform": cell.arch.platform,
        "parent": parent.id if parent else None,
    }
