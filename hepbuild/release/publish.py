"""The pipeline's publish stage: per image, the dated tag, the moving tags, the build records;
on Harbor also the project, a label and a vulnerability scan.

Input is ``build/results.json`` as ``hepbuild build`` writes it (a BuildReport: ``images``
with one BuiltImage per cell, ``outputs`` with the files each cell wrote). Without it, the
digests of the named cells are read from their per-arch tags in the registry.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

import git

from hepbuild import __version__, naming
from hepbuild.build.results import BuiltImage
from hepbuild.config.model import Cell, Config
from hepbuild.errors import ConfigError, Problem, RegistryError, UsageError
from hepbuild.files import file_digests
from hepbuild.registry.auth import load_credentials
from hepbuild.registry.harbor import HarborClient, scan_gate, split_repository
from hepbuild.release.records import (
    BUILD_RECORD_TYPE,
    BuildRecord,
    attach_referrer,
    write_local_record,
)
from hepbuild.release.store import ManifestStore
from hepbuild.release.versions import (
    PublishBlocked,
    Release,
    check_all_built,
    publish_image,
    repository_path,
)

HARBOR_LABEL = "hepbuild"
# naming.dated_tag's shape as a Harbor doublestar pattern: <version>-<base>-YYYYmmddTHHMMSSZ
DATED_TAG_PATTERN = "*-????????T??????Z"


@dataclass(frozen=True)
class BuildInputs:
    images: list[BuiltImage]
    outputs: dict[str, list[str]]  # cell id -> files the cell wrote (SIF, sandbox, ...)


@dataclass(frozen=True)
class Published:
    releases: list[Release]
    records: list[str]  # local record files written
    blocked: list[str]  # one message per image that did not publish


@dataclass(frozen=True)
class Provenance:
    """Who, what and when, passed in by the command (never read deep in here)."""

    builder: str
    recipe_commit: str | None
    when: dt.datetime


def recipe_commit(root: Path) -> str | None:
    """HEAD of the git repository holding the recipes, or None outside of git."""
    try:
        return git.Repo(root, search_parent_directories=True).head.commit.hexsha
    except (git.InvalidGitRepositoryError, git.NoSuchPathError, ValueError):
        return None


def load_build_inputs(path: Path) -> BuildInputs:
    shown = str(path)
    try:
        document = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        problem = Problem(shown, None, f"cannot read build results: {exc}",
                          "run hepbuild build first, or name the cells to publish")
        raise ConfigError([problem]) from None
    raw_images = document.get("images") if isinstance(document, dict) else None
    if not isinstance(raw_images, list):
        raise ConfigError([Problem(shown, None, "no `images` list in the build results")])
    images = [_built_image(shown, i, raw) for i, raw in enumerate(raw_images)]
    outputs = document.get("outputs") or {}
    return BuildInputs(images, {str(k): [str(p) for p in v] for k, v in outputs.items()})


def _built_image(shown: str, index: int, raw: Any) -> BuiltImage:
    names = {f.name for f in fields(BuiltImage)}
    if not isinstance(raw, dict) or not {"cell_id", "status"} <= raw.keys():
        raise ConfigError([Problem(shown, None, f"images[{index}] lacks cell_id or status")])
    values = {k: v for k, v in raw.items() if k in names}
    defaults = {"local_ref": "", "pushed_ref": None, "digest": None, "size": None,
                "platform": "", "log": "", "seconds": 0.0, "test_status": "none",
                "content_key": None, "base_digest": None}
    return BuiltImage(**{**defaults, **values})


def inputs_from_registry(
    store: ManifestStore, config: Config, cells: Sequence[Cell]
) -> BuildInputs:
    """Results for cells named on the command line: their per-arch tags in the registry."""
    registry = config.profile.registry
    images = []
    for cell in cells:
        repo = repository_path(registry, naming.repository(registry, cell.recipe))
        manifest = store.find_manifest(repo, naming.arch_tag(cell))
        images.append(BuiltImage(
            cell_id=cell.id, local_ref="", pushed_ref=naming.arch_ref(registry, cell),
            digest=manifest.digest if manifest else None, size=None,
            platform=cell.arch.platform, log="", seconds=0.0, test_status="none",
            content_key=None, base_digest=None, status="built" if manifest else "failed",
            error=None if manifest else f"{naming.arch_tag(cell)} is not in the registry",
            image_key=cell.image_key,
        ))
    return BuildInputs(images, {})


def complete_images(
    store: ManifestStore, config: Config, cells: Sequence[Cell], inputs: BuildInputs
) -> BuildInputs:
    """Add every arch of each named image that the inputs lack, read from the registry.

    An arch that was not rebuilt this time keeps its per-arch image; an arch with none there
    counts as failed, so a list never goes out without an arch the matrix has.
    """
    named = {i.cell_id for i in inputs.images}
    keys = {c.image_key for c in cells if c.id in named}
    lacking = [c for c in cells if c.image_key in keys and c.id not in named]
    found = inputs_from_registry(store, config, lacking)
    return BuildInputs(inputs.images + found.images, inputs.outputs)


def pair_cells(
    cells: Sequence[Cell], inputs: BuildInputs
) -> dict[str, list[tuple[Cell, BuiltImage]]]:
    """Group results by image; a result whose cell is not in the matrix is an error."""
    by_id = {c.id: c for c in cells}
    unknown = [i.cell_id for i in inputs.images if i.cell_id not in by_id]
    if unknown:
        raise UsageError(f"build results name cells not in the matrix: {', '.join(unknown)}",
                         "publish with the same matrix.yaml and profile the build used")
    grouped: dict[str, list[tuple[Cell, BuiltImage]]] = {}
    for image in inputs.images:
        cell = by_id[image.cell_id]
        grouped.setdefault(cell.image_key, []).append((cell, image))
    return dict(sorted(grouped.items()))


@dataclass(frozen=True)
class HarborSteps:
    """What publish does on a Harbor profile besides tagging."""

    client: HarborClient
    label: str = HARBOR_LABEL
    max_severity: str | None = None  # gate: wait for the scans, refuse worse findings
    scan_timeout: float = 600.0


def harbor_steps(
    config: Config, env: Mapping[str, str], *, max_severity: str | None = None,
    scan_timeout: float = 600.0,
) -> HarborSteps | None:
    """The Harbor steps for a profile whose registry is a Harbor; None for any other."""
    registry = config.profile.registry
    if registry.kind != "harbor":
        return None
    client = HarborClient.for_registry(registry, load_credentials(registry.host, env))
    return HarborSteps(client, max_severity=max_severity, scan_timeout=scan_timeout)


def publish_all(
    store: ManifestStore, config: Config, grouped: Mapping[str, list[tuple[Cell, BuiltImage]]],
    inputs: BuildInputs, provenance: Provenance, records_dir: Path,
    harbor: HarborSteps | None = None,
) -> Published:
    """Publish every image; one image that cannot publish does not stop the others."""
    releases, records, blocked = [], [], []
    for pairs in grouped.values():
        try:
            check_all_built(pairs)
            if harbor is not None:
                _scan_arches(harbor, config, pairs)
            release = publish_image(store, pairs, provenance.when, registry=config.profile.registry)
        except PublishBlocked as exc:
            blocked.append(exc.message)
            continue
        releases.append(release)
        records += [str(p) for p in _record_cells(store, config, pairs, inputs, provenance,
                                                   records_dir)]
        if harbor is not None:
            _label_release(harbor, config, release)
    return Published(releases, records, blocked)


def _record_cells(
    store: ManifestStore, config: Config, pairs: Sequence[tuple[Cell, BuiltImage]],
    inputs: BuildInputs, provenance: Provenance, records_dir: Path,
) -> list[Path]:
    written = []
    for cell, image in pairs:
        record = build_record(cell, image, inputs.outputs.get(cell.id, []), provenance)
        repo = repository_path(config.profile.registry,
                               naming.repository(config.profile.registry, cell.recipe))
        subject = store.find_manifest(repo, str(image.digest))
        if subject is not None:
            attach_referrer(store, repo, subject, BUILD_RECORD_TYPE, record.to_json(),
                            {"dev.hepbuild.record.cell": cell.id})
        written.append(write_local_record(records_dir, record))
    return written


def build_record(
    cell: Cell, image: BuiltImage, outputs: Sequence[str], provenance: Provenance
) -> BuildRecord:
    sif = next((Path(p) for p in outputs if p.endswith(".sif") and Path(p).is_file()), None)
    sandbox = next((p for p in outputs if p.endswith(".sandbox") and Path(p).is_dir()), None)
    sif_sha256, sif_md5 = _sif_digests(sif) if sif else (None, None)
    return BuildRecord(
        cell_id=cell.id, oci_digest=image.digest, sif_sha256=sif_sha256, sif_md5=sif_md5,
        sandbox_path=sandbox, recipe_commit=provenance.recipe_commit,
        base_digest=image.base_digest, content_key=image.content_key,
        build_time=provenance.when.astimezone(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        hepbuild_version=__version__, builder=provenance.builder,
    )


def _sif_digests(path: Path) -> tuple[str, str]:
    """The SIF's sha256 as a digest (``sha256:..``, as records carry it) and its md5."""
    sha, md5 = file_digests(path)
    return "sha256:" + sha, md5


def _scan_arches(
    harbor: HarborSteps, config: Config, pairs: Sequence[tuple[Cell, BuiltImage]]
) -> None:
    """Scan each arch image (a list is not scannable) before any tag moves; gate if asked."""
    registry = config.profile.registry
    project, repo = split_repository(registry, naming.repository(registry, pairs[0][0].recipe))
    harbor.client.ensure_project(project, public=registry.public)
    harbor.client.ensure_immutable_rule(project, DATED_TAG_PATTERN)
    scanned = [(c, i) for c, i in pairs if harbor.client.trigger_scan(project, repo, str(i.digest))]
    if harbor.max_severity is None:
        return
    for cell, image in scanned:
        summary = harbor.client.wait_for_scan(project, repo, str(image.digest),
                                              timeout=harbor.scan_timeout)
        try:
            scan_gate(summary, harbor.max_severity)
        except RegistryError as exc:
            raise PublishBlocked(f"{cell.id}: {exc.message}", exc.hint) from None


def _label_release(harbor: HarborSteps, config: Config, release: Release) -> None:
    project, repo = split_repository(config.profile.registry, release.repository)
    label = harbor.client.ensure_label(harbor.label, harbor.client.project_id(project))
    harbor.client.attach_label(project, repo, release.digest, label)
