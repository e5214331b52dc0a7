"""The child pipeline GitLab runs for a plan: one job per built cell, one per multi-arch image.

    <cell id>      build + test one cell on its arch's runner (native, or under qemu on another)
    <image key>    assemble and push the multi-arch list once all its arch jobs finished
                   (only when the pipeline publishes; merge requests push nothing)

What a job runs is a variable (HEPBUILD_BUILD_CMD, HEPBUILD_LIST_CMD), so a site, or a test,
can point the same pipeline at another command without regenerating it.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from hepbuild import naming
from hepbuild.ci.plan import Plan, PlannedCell
from hepbuild.ci.project import Snapshot
from hepbuild.config.model import Cell, Matrix
from hepbuild.errors import RenderError
from hepbuild.files import atomic_write
from hepbuild.platforms import Arch

BUILD_STAGE = "build"
IMAGES_STAGE = "images"
NOOP_JOB = "nothing-to-build"

ARTIFACT_PATHS = ("build/logs/", "build/records/", "build/reports/", "dist/**/*.sif")
JUNIT_REPORT = "build/reports/junit.xml"


@dataclass(frozen=True)
class PipelineOptions:
    publish: bool  # push images and assemble lists; False for merge requests
    profile: str
    timeout: str = "3h"
    artifacts_expire: str = "1 week"
    build_cmd: str = "hepbuild build"
    setup: tuple[str, ...] = ()  # before_script of every job (install hepbuild, log in, ...)
    list_cmd: str = "hepbuild ci assemble"


def child_pipeline(plan: Plan, snapshot: Snapshot, options: PipelineOptions) -> dict[str, Any]:
    builds = plan.builds
    if not builds:
        return _noop_pipeline(plan, options)
    cells = {cell.id: cell for cell in snapshot.cells}
    by_id = {planned.cell_id: planned for planned in builds}
    doc: dict[str, Any] = {
        "stages": [BUILD_STAGE, IMAGES_STAGE] if options.publish else [BUILD_STAGE],
        "variables": _variables(options),
    }
    if options.setup:
        doc["default"] = {"before_script": list(options.setup)}
    for planned in builds:
        cell = cells[planned.cell_id]
        selection = _selection(planned, by_id, options)
        doc[planned.cell_id] = _cell_job(planned, cell, selection, snapshot.config.matrix, options)
    if options.publish:
        for image, members in _by_image(builds).items():
            _refuse_name_clash(doc, image)
            doc[image] = _image_job(image, members, cells[members[0].cell_id], options)
    return doc


def _variables(options: PipelineOptions) -> dict[str, str]:
    return {
        "HEPBUILD_PROFILE": options.profile,
        "HEPBUILD_BUILD_CMD": options.build_cmd,
        # Arch jobs push only their per-arch tag; the image job writes the dated list and
        # the publish stage moves the version and latest tags, once every arch is good.
        "HEPBUILD_BUILD_ARGS": "--push --no-lists" if options.publish else "--no-push",
        "HEPBUILD_LIST_CMD": options.list_cmd,
    }


def _selection(
    planned: PlannedCell, by_id: dict[str, PlannedCell], options: PipelineOptions
) -> list[str]:
    """The cells one job builds: itself, plus, when nothing is pushed, its rebuilt ancestors.

    Without a push a child cannot pull its new parent from the registry, so a merge request
    job builds the parent chain itself (buildah tags the parent locally for the child).
    """
    chain = [planned.cell_id]
    parent = planned.parent
    while parent and not options.publish:
        chain.insert(0, parent)
        parent = by_id[parent].parent if parent in by_id else None
    return chain


def _cell_job(
    planned: PlannedCell, cell: Cell, selection: list[str], matrix: Matrix,
    options: PipelineOptions,
) -> dict[str, Any]:
    tags, native = runner_for(matrix, cell.arch)
    job: dict[str, Any] = {
        "stage": BUILD_STAGE,
        "needs": [{"job": planned.parent, "artifacts": False}] if planned.parent else [],
        "variables": {"HEPBUILD_CELL": cell.id, "HEPBUILD_EMULATED": "false" if native else "true"},
        "script": [f"$HEPBUILD_BUILD_CMD {_selects(selection)} $HEPBUILD_BUILD_ARGS"],
        "artifacts": _artifacts(options),
        "interruptible": True,
        "timeout": options.timeout,
        "resource_group": resource_group(cell, naming.arch_tag(cell)),
    }
    if tags:
        job["tags"] = list(tags)
    return job


def runner_for(matrix: Matrix, arch: Arch) -> tuple[tuple[str, ...], bool]:
    """Runner tags for an arch and whether it runs natively. An arch with no runner entry
    runs under qemu on the first native runner listed in matrix.yaml ``runners:`` (the
    centre's x86_64 one); with no native runner at all the job carries no tags."""
    runner = matrix.runners.get(arch.name)
    if runner is not None:
        return runner.tags, runner.native
    host = next((r for r in matrix.runners.values() if r.native), None)
    return (host.tags if host else ()), False


def _artifacts(options: PipelineOptions) -> dict[str, Any]:
    return {
        "when": "always",
        "expire_in": options.artifacts_expire,
        "paths": list(ARTIFACT_PATHS),
        "reports": {"junit": JUNIT_REPORT},
    }


def _by_image(builds: tuple[PlannedCell, ...]) -> dict[str, list[PlannedCell]]:
    images: dict[str, list[PlannedCell]] = {}
    for planned in builds:
        images.setdefault(planned.image, []).append(planned)
    return images


def _image_job(
    image: str, members: list[PlannedCell], cell: Cell, options: PipelineOptions
) -> dict[str, Any]:
    return {
        "stage": IMAGES_STAGE,
        "needs": [{"job": m.cell_id, "artifacts": False} for m in members],
        "variables": {"HEPBUILD_IMAGE": image},
        # HEPBUILD_RELEASE_TIME is the parent pipeline's creation time (set on the trigger
        # job), so this dated tag is the one the publish stage finds and moves tags to.
        "script": [f'$HEPBUILD_LIST_CMD {_quote(image)} --time "$HEPBUILD_RELEASE_TIME"'],
        "interruptible": True,
        "timeout": options.timeout,
        "resource_group": resource_group(cell, naming.version_tag(cell)),
    }


def resource_group(cell: Cell, tag: str) -> str:
    """One group per image tag, so two pipelines never push the same tag at once.

    GitLab allows letters, digits, ``-_/.{}$`` and spaces here, so the tag's colon becomes /.
    """
    return f"hepbuild/{cell.recipe.group}/{cell.recipe.name}/{tag}".lower()


def _refuse_name_clash(doc: dict[str, Any], name: str) -> None:
    if name in doc:
        raise RenderError(
            f"the image job {name!r} has the same name as a cell job",
            "rename the recipe or base so that no cell id equals another cell's image key",
        )


def _noop_pipeline(plan: Plan, options: PipelineOptions) -> dict[str, Any]:
    """GitLab rejects a child pipeline without jobs, so an empty plan still gets one."""
    skipped = len(plan.cells)
    message = f"hepbuild ci plan: nothing to build ({plan.why}; {skipped} cell(s) up to date)"
    return {
        "stages": [BUILD_STAGE],
        NOOP_JOB: {
            "stage": BUILD_STAGE,
            "script": [f"echo {_quote(message)}"],
            "interruptible": True,
            "timeout": "5m",
        },
    }


def _selects(cell_ids: list[str]) -> str:
    return " ".join(f"--select {_quote(cell_id)}" for cell_id in cell_ids)


def _quote(text: str) -> str:
    return "'" + text.replace("'", "'\"'\"'") + "'"


def dump_pipeline(doc: dict[str, Any]) -> str:
    return yaml.safe_dump(doc, sort_keys=False, default_flow_style=False, width=1000)


def write_pipeline(doc: dict[str, Any], path: Path) -> None:
    """Write atomically: GitLab must never pick up half a pipeline."""
    atomic_write(path, dump_pipeline(doc))
