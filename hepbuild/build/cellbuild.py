"""Building one cell: buildah build under a private name, tag on success, test, report.

Each cell builds under ``localhost/hepbuild-tmp/<uuid>`` and only gets its real names once
the build succeeded, so parallel builds never race for a tag and a failed build never
leaves a half-made image under a name somebody else would pick up.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from hepbuild import output
from hepbuild.build.buildah import Buildah
from hepbuild.build.imagetest import run_image_test
from hepbuild.build.logscan import failing_step, log_tail
from hepbuild.build.results import BuiltImage, TestStatus
from hepbuild.config.model import Cell
from hepbuild.errors import BuildError, HepbuildError, ToolError


@dataclass(frozen=True)
class BuildJob:
    cell: Cell
    dockerfile: Path
    context: Path
    local_ref: str  # final local name
    extra_names: tuple[str, ...] = ()  # more local names (e.g. the registry name, for children)
    parent_id: str | None = None
    content_key: str | None = None
    base_digest: str | None = None
    labels: Mapping[str, str] = field(default_factory=dict)


def log_path_for(cell_id: str, logs_dir: Path) -> Path:
    return logs_dir / f"{cell_id.replace('/', '__')}.log"


def build_cell(buildah: Buildah, job: BuildJob, logs_dir: Path, *, run_tests: bool) -> BuiltImage:
    """Build, tag and test one cell. Failures come back as a BuiltImage with status failed."""
    start = time.monotonic()
    log_path = log_path_for(job.cell.id, logs_dir)
    logs_dir.mkdir(parents=True, exist_ok=True)
    output.info(f"--> {job.cell.id}: building (log {log_path})")
    try:
        _build_and_tag(buildah, job, log_path)
        facts = buildah.inspect_image(job.local_ref)
        test_status, test_error = _test(buildah, job, log_path, run_tests)
    except BuildError as exc:
        return _failed(job, log_path, start, exc)
    seconds = round(time.monotonic() - start, 1)
    output.info(f"<-- {job.cell.id}: built in {seconds} s, test {test_status}")
    return BuiltImage(
        job.cell.id, job.local_ref, None, facts.digest, facts.size, facts.platform,
        str(log_path), seconds, test_status, job.content_key, job.base_digest,
        status="built", error=test_error, image_key=job.cell.image_key,
    )


def _build_and_tag(buildah: Buildah, job: BuildJob, log_path: Path) -> None:
    private = f"localhost/hepbuild-tmp/{uuid.uuid4().hex}:build"
    with log_path.open("wb") as log:
        try:
            buildah.build(dockerfile=job.dockerfile, context=job.context, tag=private,
                          arch=job.cell.arch, log=log, labels=job.labels)
        except ToolError:
            log.flush()
            text = log_path.read_text(encoding="utf-8", errors="replace")
            raise BuildError(job.cell.id, failing_step(text), str(log_path), log_tail(log_path),
                             f"fix the recipe and run again: hepbuild build --select "
                             f"{job.cell.id}") from None
    try:
        buildah.tag(private, job.local_ref, *job.extra_names)
    finally:
        buildah.untag(private)


def _test(buildah: Buildah, job: BuildJob, log_path: Path,
          run_tests: bool) -> tuple[TestStatus, str | None]:
    command = job.cell.recipe.test
    if not command:
        return "none", None
    if not run_tests:
        return "skipped", "tests disabled (--no-test)"
    with log_path.open("ab") as log:
        try:
            outcome = run_image_test(buildah, job.local_ref, command, log)
        except HepbuildError as exc:
            return "failed", f"test could not start: {exc.message}"
    if outcome.passed:
        return "passed", None
    return "failed", f"test `{command}` exited with {outcome.exit_code}"


def _failed(job: BuildJob, log_path: Path, start: float, exc: BuildError) -> BuiltImage:
    output.warn(exc.render())
    return BuiltImage(
        job.cell.id, job.local_ref, None, None, None, job.cell.arch.platform, str(log_path),
        round(time.monotonic() - start, 1), "skipped", job.content_key, job.base_digest,
        status="failed", error=f"failed at step: {exc.step}", image_key=job.cell.image_key,
        step=exc.step,
    )


def skipped_child(job: BuildJob, parent_id: str, logs_dir: Path) -> BuiltImage:
    log_path = log_path_for(job.cell.id, logs_dir)
    logs_dir.mkdir(parents=True, exist_ok=True)
    log_path.write_text(f"not built: parent cell {parent_id} did not build\n", encoding="utf-8")
    output.warn(f"{job.cell.id}: skipped, parent {parent_id} did not build")
    return BuiltImage(
        job.cell.id, job.local_ref, None, None, None, job.cell.arch.platform, str(log_path),
        0.0, "skipped", job.content_key, job.base_digest, status="skipped",
        error=f"parent {parent_id} did not build", image_key=job.cell.image_key,
    )
