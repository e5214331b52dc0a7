"""Planning: which cells a pipeline builds, and why; which it skips, and why.

    changed files (git)  ->  affected cells with reasons  ->  + dependents
                         ->  content-key check against the registry  ->  Plan

Everything the plan depends on (the environment, the registry lookup, how a revision is
loaded) comes in as arguments, so each step is testable alone.
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import git

from hepbuild import naming
from hepbuild.ci import changes, impact
from hepbuild.ci.keys import KeyLookup
from hepbuild.ci.project import Snapshot
from hepbuild.config.model import Cell
from hepbuild.errors import HepbuildError, RegistryError
from hepbuild.output import info, section, warn

SnapshotLoader = Callable[[Path], Snapshot]

MATRIX_FILE = "matrix.yaml"
# What a revision needs on disk to be loaded again (the old side of a matrix.yaml change).
PROJECT_PARTS = (MATRIX_FILE, "recipes", "templates")


@dataclass(frozen=True)
class PlanRequest:
    root: Path
    env: Mapping[str, str]
    since: str | None = None
    plan_all: bool = False
    force: bool = False
    include_worktree: bool = False  # count uncommitted edits (local runs)


@dataclass(frozen=True)
class PlannedCell:
    cell_id: str
    image: str  # cell.image_key
    action: Literal["build", "skip"]
    reasons: tuple[str, ...]
    ref: str  # the per-arch image reference in the profile's registry
    parent: str | None  # parent cell id when the parent is built in this pipeline
    content_key: str | None
    seconds: float

    @property
    def reason(self) -> str:
        """The headline: why it is built (the first cause), or why it is skipped (the last)."""
        if not self.reasons:
            return ""
        return self.reasons[-1] if self.action == "skip" else self.reasons[0]


@dataclass(frozen=True)
class Plan:
    diff_base: str | None
    why: str  # how the cells were chosen (diff base, --all, schedule)
    changed: tuple[str, ...]
    cells: tuple[PlannedCell, ...]
    steps: dict[str, float] = field(default_factory=dict)  # step name -> seconds

    @property
    def builds(self) -> tuple[PlannedCell, ...]:
        return tuple(c for c in self.cells if c.action == "build")


def make_plan(
    request: PlanRequest, new: Snapshot, load_revision: SnapshotLoader, lookup: KeyLookup
) -> Plan:
    steps: dict[str, float] = {}
    started = time.perf_counter()
    diff_base, why, changed = _changes(request, new)
    steps["changes"] = time.perf_counter() - started

    started = time.perf_counter()
    if diff_base is None:
        reasons: impact.Reasons = {cell.id: [why] for cell in new.cells}
    else:
        old = _old_snapshot(request, diff_base, changed, load_revision)
        reasons = impact.affected_by_files(changed, new, old, MATRIX_FILE)
        impact.add_dependents(reasons, new)
    steps["impact"] = time.perf_counter() - started

    started = time.perf_counter()
    cells = _decide(new, reasons, lookup, force=request.force)
    steps["keys"] = time.perf_counter() - started
    return Plan(diff_base, why, tuple(changed), cells, steps)


def _changes(request: PlanRequest, new: Snapshot) -> tuple[str | None, str, list[str]]:
    if request.plan_all:
        return None, "--all: every cell", []
    with changes.open_repo(request.root) as repo:
        base = changes.resolve_base(repo, request.env, request.since)
        if base.sha is None:
            return None, base.why, []
        paths = changes.changed_files(repo, base.sha, include_worktree=request.include_worktree)
        return base.sha, base.why, _project_relative(paths, repo, new.config.root)


def _project_relative(paths: list[str], repo: git.Repo, root: Path) -> list[str]:
    """Git names paths from the repository top; the rules name them from the project root."""
    top = Path(str(repo.working_tree_dir)).resolve()
    root = root.resolve()
    if root == top:
        return paths
    prefix = root.relative_to(top).as_posix() + "/"
    return [p[len(prefix):] for p in paths if p.startswith(prefix)]


def _old_snapshot(
    request: PlanRequest, sha: str, changed: list[str], load_revision: SnapshotLoader
) -> Snapshot | None:
    """The project at the diff base, loaded only when matrix.yaml changed (it is slow-ish)."""
    if MATRIX_FILE not in changed:
        return None
    with changes.open_repo(request.root) as repo, \
            tempfile.TemporaryDirectory(prefix="hepbuild-plan-") as tmp:
        top = Path(str(repo.working_tree_dir)).resolve()
        sub = request.root.resolve().relative_to(top)
        prefixes = tuple((sub / part).as_posix() for part in PROJECT_PARTS)
        changes.read_tree(repo, sha, Path(tmp), prefixes)
        try:
            return load_revision(Path(tmp) / sub)
        except HepbuildError as exc:
            warn(f"the project at {sha[:12]} does not load ({exc.message}); planning every cell")
            return None


def _decide(
    snapshot: Snapshot, reasons: impact.Reasons, lookup: KeyLookup, *, force: bool
) -> tuple[PlannedCell, ...]:
    """Parents first: a cell whose parent is built is built too, whatever its key says."""
    built: set[str] = set()
    planned: list[PlannedCell] = []
    registry = snapshot.config.profile.registry
    for cell in snapshot.cells:
        if cell.id not in reasons:
            continue
        with section(f"plan_{cell.id}", f"plan {cell.id}"):
            started = time.perf_counter()
            parent = impact.parent_cell_id(cell)
            parent_built = parent in built
            key = None if parent_built else snapshot.content_key(cell)
            ref = naming.arch_ref(registry, cell)
            action, why = _action(cell, ref, key, lookup, force=force, parent_built=parent_built)
        if action == "build":
            built.add(cell.id)
        planned.append(PlannedCell(
            cell.id, cell.image_key, action, (*reasons[cell.id], *why), ref,
            parent if parent_built else None, key, time.perf_counter() - started,
        ))
    return tuple(planned)


def _action(
    cell: Cell, ref: str, key: str | None, lookup: KeyLookup, *, force: bool, parent_built: bool
) -> tuple[Literal["build", "skip"], tuple[str, ...]]:
    if parent_built:
        return "build", ()
    if force:
        return "build", ("--force: content key not checked",)
    assert key is not None
    try:
        stored = lookup(ref)
    except RegistryError as exc:
        warn(f"{cell.id}: {exc.message}; building it")
        return "build", ("registry lookup failed",)
    info(f"content key {key}; {ref} has {stored or 'no image or no key'}")
    if stored == key:
        return "skip", ("up to date: the registry image has this content key",)
    return "build", ()
