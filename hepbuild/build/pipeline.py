"""The main job: cells -> rendered Dockerfiles -> buildah builds -> tests -> pushes -> lists.

``plan_jobs`` turns selected cells into BuildJobs (render, base digest, names);
``run_jobs`` builds them in parallel, parents first; ``publish`` pushes per-arch images
and then the multi-arch lists; ``write_outputs`` makes each cell's OCI/SIF/sandbox.
"""

from __future__ import annotations

import os
import re
import shutil
import uuid
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hepbuild import naming, output
from hepbuild.build.bases import remote_digest
from hepbuild.build.buildah import Buildah
from hepbuild.build.cellbuild import BuildJob, build_cell, skipped_child
from hepbuild.build.logscan import log_tail
from hepbuild.build.publish import push_cell_images, pushable
from hepbuild.build.results import BuiltImage
from hepbuild.build.scheduler import OrderedRunner
from hepbuild.config.model import Cell, Config
from hepbuild.errors import BuildError, HepbuildError
from hepbuild.files import write_checksum_files
from hepbuild.image.convert import convert as convert_image
from hepbuild.release.versions import Release

_PINNED = re.compile(r"@(sha256:[0-9a-f]{64})$")


@dataclass(frozen=True)
class Layout:
    """Where a run writes: build/ (rendered files, logs, reports) and dist/ (outputs)."""

    root: Path

    @property
    def render_dir(self) -> Path:
        return self.root / "build" / "rendered"

    @property
    def logs_dir(self) -> Path:
        return self.root / "build" / "logs"

    @property
    def junit_path(self) -> Path:
        return self.root / "build" / "reports" / "junit.xml"

    @property
    def dist_dir(self) -> Path:
        return self.root / "dist"


@dataclass(frozen=True)
class BuildReport:
    images: list[BuiltImage]
    releases: list[Release] = field(default_factory=list)
    blocked: list[str] = field(default_factory=list)  # images whose tags did not move
    outputs: dict[str, list[str]] = field(default_factory=dict)  # cell id -> files written
    junit: str | None = None


# --- planning ------------------------------------------------------------------------------


def base_digest_of(ref: str, *, tls_verify: bool, authfile: str | None) -> str | None:
    pinned = _PINNED.search(ref)
    if pinned:
        return pinned.group(1)
    return remote_digest(ref, tls_verify=tls_verify, authfile=authfile)


DigestOf = Callable[[Config, Cell], str | None]


def parent_key_of(config: Config, cell: Cell, digest_of: DigestOf) -> str | None:
    """The content key of a child cell's parent, itself keyed the same way; None at the root.

    This is what a child's content key takes from below, so that changing a parent (or its
    base) changes the key of every descendant. ``digest_of`` gives a root cell's base digest.
    The build and the CI planner both key cells through here.
    """
    from hepbuild.cells import parent_cell
    from hepbuild.render import content_key_of

    parent = parent_cell(config, cell)
    if parent is None:
        return None
    grandparent_key = parent_key_of(config, parent, digest_of)
    base = None if grandparent_key else digest_of(config, parent)
    return content_key_of(config, parent, base, parent_key=grandparent_key)


def plan_jobs(
    config: Config, cells: Sequence[Cell], layout: Layout, buildah: Buildah
) -> list[BuildJob]:
    """Render every selected cell; a missing base is reported before anything is built."""
    from hepbuild.cells import base_image, parent_cell
    from hepbuild.render import render_cell

    digests: dict[str, str] = {}

    def digest_of(cfg: Config, cell: Cell) -> str:
        ref = base_image(cfg, cell)
        if ref not in digests:
            digests[ref] = _base_digest(cfg, cell, ref, buildah)
        return digests[ref]

    selected = {cell.id for cell in cells}
    jobs: list[BuildJob] = []
    for cell in cells:
        parent = parent_cell(config, cell)
        digest = None if parent else digest_of(config, cell)
        parent_key = parent_key_of(config, cell, digest_of) if parent else None
        rendered = render_cell(config, cell, layout.render_dir, base_digest=digest,
                               parent_key=parent_key)
        jobs.append(_job(config, cell, rendered, parent, digest, selected))
    return jobs


def _base_digest(config: Config, cell: Cell, ref: str, buildah: Buildah) -> str:
    settings = buildah.settings
    digest = base_digest_of(ref, tls_verify=settings.tls_verify, authfile=settings.authfile)
    if digest is None:
        hint = ("is the registry running (hepbuild registry start)? then run "
                f"`hepbuild bases --profile {config.profile.name}`" if config.profile.bootstrap
                else "check the base's image reference in matrix.yaml and your registry login")
        raise HepbuildError(f"base image {ref} of cell {cell.id} is not in its registry", hint)
    return digest


def _job(config: Config, cell: Cell, rendered: Any, parent: Cell | None, digest: str | None,
         selected: set[str]) -> BuildJob:
    dockerfile = _dockerfile_path(rendered)
    registry_name = naming.arch_ref(config.profile.registry, cell)
    return BuildJob(
        cell=cell, dockerfile=dockerfile, context=Path(rendered.context_dir),
        local_ref=naming.local_name(cell),
        # Children build FROM the parent's registry name; tagging it locally too lets them
        # start before (or without) a push.
        extra_names=(registry_name,),
        parent_id=parent.id if parent and parent.id in selected else None,
        content_key=getattr(rendered, "content_key", None), base_digest=digest,
        labels=dict(getattr(rendered, "labels", None) or {}),
    )


def _dockerfile_path(rendered: Any) -> Path:
    value = rendered.dockerfile
    if isinstance(value, Path):
        return value
    path = Path(rendered.directory) / "Dockerfile"
    if not path.exists():
        path.write_text(str(value), encoding="utf-8")
    return path


# --- building ------------------------------------------------------------------------------


def run_jobs(buildah: Buildah, jobs: Sequence[BuildJob], layout: Layout, *, max_workers: int,
             run_tests: bool) -> list[BuiltImage]:
    """Build every job, ``max_workers`` at a time, a child only after its parent built."""
    total = len(jobs)
    finished: list[str] = []

    def work(job: BuildJob) -> BuiltImage:
        # One GitLab section per cell, with its time; CI jobs build one cell (or one chain).
        with output.section(f"cell_{job.cell.id}", f"build {job.cell.id}"):
            image = build_cell(buildah, job, layout.logs_dir, run_tests=run_tests)
        finished.append(job.cell.id)
        output.progress(len(finished), total, f"{job.cell.id}: {image.status}")
        return image

    runner: OrderedRunner[BuildJob, BuiltImage] = OrderedRunner(
        id_of=lambda j: j.cell.id, parent_of=lambda j: j.parent_id, work=work,
        skip=lambda j, parent: skipped_child(j, parent, layout.logs_dir),
        succeeded=lambda image: image.status == "built",
    )
    results = runner.run(jobs, max_workers)
    return [results[job.cell.id] for job in jobs]


def push_images(buildah: Buildah, config: Config, jobs: Sequence[BuildJob],
                images: Sequence[BuiltImage]) -> list[BuiltImage]:
    """Per-arch images only; lists are left to ``build.publish.release_images``."""
    registry = config.profile.registry
    targets = {j.cell.id: naming.arch_ref(registry, j.cell) for j in jobs}
    return push_cell_images(buildah, images, targets)


# --- outputs (OCI, SIF, sandbox) -----------------------------------------------------------

# The file (sif) or directory (oci layout, sandbox) each output kind becomes.
_SUFFIXES: dict[str, str] = {"oci": ".oci", "sif": ".sif", "sandbox": ".sandbox"}


def write_outputs(jobs: Sequence[BuildJob], images: Sequence[BuiltImage], layout: Layout,
                  *, max_workers: int) -> tuple[dict[str, list[str]], list[HepbuildError]]:
    """Each good cell's outputs into dist/<cell id>/; the errors come back, not raised."""
    by_id = {i.cell_id: i for i in images}
    todo = [job for job in jobs if pushable(by_id[job.cell.id]) and job.cell.recipe.outputs]
    written: dict[str, list[str]] = {}
    errors: list[HepbuildError] = []
    with ThreadPoolExecutor(max_workers=max(1, max_workers)) as pool:
        futures = {pool.submit(_outputs_for, convert_image, job, by_id[job.cell.id], layout): job
                   for job in todo}
        for future, job in futures.items():
            try:
                written[job.cell.id] = future.result()
            except HepbuildError as exc:
                output.warn(f"{job.cell.id}: output failed: {exc.message}")
                errors.append(exc)
    return written, errors


def _outputs_for(convert: Callable[..., Any], job: BuildJob, image: BuiltImage,
                 layout: Layout) -> list[str]:
    directory = layout.dist_dir / job.cell.id
    directory.mkdir(parents=True, exist_ok=True)
    files: list[str] = []
    for kind in job.cell.recipe.outputs:
        final = directory / f"{job.cell.recipe.name}{_SUFFIXES[kind]}"
        # convert() never writes into an existing output, so a rebuild converts to a fresh
        # name and then swaps it in; a failed conversion leaves the previous output intact.
        fresh = directory / f".{final.name}.new-{uuid.uuid4().hex[:8]}"
        convert(f"containers-storage:{image.local_ref}", f"{kind}:{fresh}",
                arch=job.cell.arch.name)
        _replace(fresh, final)
        files.append(str(final))
        files += [str(p) for p in _move_checksums(fresh, final)]
    return files


def _move_checksums(fresh: Path, final: Path) -> list[Path]:
    """convert() wrote FILE.sha256/.md5 for the fresh name; write them for the final one."""
    made = [fresh.with_name(f"{fresh.name}.{kind}") for kind in ("sha256", "md5")]
    if not any(p.exists() for p in made):
        return []  # a directory output (oci layout, sandbox) has no checksum files
    for path in made:
        path.unlink(missing_ok=True)
    return write_checksum_files(final)[2]


def _replace(fresh: Path, final: Path) -> None:
    if final.is_dir() and not final.is_symlink():
        shutil.rmtree(final)
    elif final.exists() or final.is_symlink():
        final.unlink()
    os.replace(fresh, final)


# --- the verdict ---------------------------------------------------------------------------


def first_failure(images: Sequence[BuiltImage]) -> BuildError | None:
    """The error for the first failed build or test, naming the cell and the step."""
    failed = [i for i in images if i.status == "failed" or i.test_status == "failed"]
    if not failed:
        return None
    image = failed[0]
    others = len(failed) - 1
    more = f"; {others} more cell(s) failed, see the summary" if others else ""
    step = (image.step or "build") if image.status == "failed" else (image.error or "test")
    return BuildError(image.cell_id, step, image.log, log_tail(Path(image.log)),
                      f"fix it and run: hepbuild build --select {image.cell_id}{more}")
