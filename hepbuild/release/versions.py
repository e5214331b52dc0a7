"""Versions of an image: the immutable dated tag, then the moving tags, only when all is well.

A release of one image (``group/name-base``) gathers the per-arch manifests into one list,
pushes it under the dated tag (``naming.dated_tag``), then moves ``naming.version_tag`` and
``naming.latest_tag`` to it. Everything is checked before the first tag is written: if any
arch failed, or its manifest is not in the registry, nothing moves.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from hepbuild import naming
from hepbuild.build.results import BuiltImage
from hepbuild.config.model import Cell, Registry
from hepbuild.errors import HepbuildError, RegistryError, UsageError
from hepbuild.files import sha256_digest
from hepbuild.platforms import parse_platform
from hepbuild.release.store import (
    DOCKER_LIST,
    DOCKER_MANIFEST,
    OCI_INDEX,
    Manifest,
    ManifestStore,
)

CellResult = tuple[Cell, BuiltImage]


class PublishBlocked(HepbuildError):
    """Not every arch of an image is ready, so no tag of it was moved."""

    exit_code = 7


@dataclass(frozen=True)
class ListPlan:
    """One list manifest to push to one repository under the dated and moving tags."""

    repository: str  # path inside the registry, no host
    data: bytes
    media_type: str

    @property
    def digest(self) -> str:
        return sha256_digest(self.data)


@dataclass(frozen=True)
class Release:
    image_key: str
    repository: str  # with host, as naming.repository spells it
    digest: str
    dated_tag: str
    moving_tags: tuple[str, ...]
    platforms: tuple[str, ...]
    cells: tuple[str, ...]
    sif_repository: str | None = None
    sif_digest: str | None = None


def repository_path(registry: Registry, full_repository: str) -> str:
    """``host:port/ns/group/name`` -> ``ns/group/name`` (the part after the registry host)."""
    if full_repository.startswith(registry.host + "/"):
        return full_repository[len(registry.host) + 1 :]
    return full_repository


def moving_tags(cell: Cell) -> tuple[str, str]:
    return naming.version_tag(cell), naming.latest_tag(cell)


def publish_image(
    client: ManifestStore, cells_results: Sequence[CellResult], when: dt.datetime, *,
    registry: Registry,
) -> Release:
    """Push the dated tag of one image, then its moving tags; all arches or nothing."""
    cell, plans, dated = push_dated(client, cells_results, when, registry=registry)
    for plan in plans:
        for tag in moving_tags(cell):
            client.put_manifest(plan.repository, tag, plan.data, plan.media_type)
    return _release(registry, cell, cells_results, plans, dated)


def plan_lists(
    client: ManifestStore, cells_results: Sequence[CellResult], *, registry: Registry
) -> list[ListPlan]:
    """The multi-arch list of one image (and of its SIFs), checked before anything is written.

    This is the only place a list is made, so the CI image job, ``hepbuild build --push``
    and ``hepbuild publish`` write byte-identical lists for the same per-arch images.
    """
    cell = _check_one_image(cells_results)
    check_all_built(cells_results)
    oci_repo = repository_path(registry, naming.repository(registry, cell.recipe))
    plans = [_list_plan(oci_repo, _oci_manifests(client, oci_repo, cells_results))]
    if "sif" in cell.recipe.outputs:
        sif_repo = repository_path(registry, naming.repository(registry, cell.recipe, sif=True))
        plans.append(_list_plan(sif_repo, _sif_manifests(client, sif_repo, cells_results)))
    return plans


def push_dated(
    client: ManifestStore, cells_results: Sequence[CellResult], when: dt.datetime, *,
    registry: Registry,
) -> tuple[Cell, list[ListPlan], str]:
    """Write only the immutable dated tag of one image; no moving tag is touched."""
    cell = _check_one_image(cells_results)
    plans = plan_lists(client, cells_results, registry=registry)
    dated = naming.dated_tag(cell, when)
    # A retried job finds its dated tag already there, with the same bytes: leave it alone
    # (Harbor refuses any write to a tag its immutability rule covers).
    to_write = [plan for plan in plans if not _dated_exists(client, plan, dated)]
    for plan in to_write:
        client.put_manifest(plan.repository, dated, plan.data, plan.media_type)
    return cell, plans, dated


def _release(
    registry: Registry, cell: Cell, cells_results: Sequence[CellResult],
    plans: Sequence[ListPlan], dated: str,
) -> Release:
    sif = plans[1] if len(plans) > 1 else None
    return Release(
        image_key=cell.image_key,
        repository=naming.repository(registry, cell.recipe),
        digest=plans[0].digest,
        dated_tag=dated,
        moving_tags=moving_tags(cell),
        platforms=tuple(sorted(r.platform for _, r in cells_results)),
        cells=tuple(sorted(c.id for c, _ in cells_results)),
        sif_repository=f"{registry.host}/{sif.repository}" if sif else None,
        sif_digest=sif.digest if sif else None,
    )


def _check_one_image(cells_results: Sequence[CellResult]) -> Cell:
    if not cells_results:
        raise UsageError("nothing to publish: no build results were given")
    keys = sorted({cell.image_key for cell, _ in cells_results})
    if len(keys) != 1:
        raise UsageError(f"publish_image takes the arches of one image, got {', '.join(keys)}")
    return cells_results[0][0]


def check_all_built(cells_results: Sequence[CellResult]) -> None:
    failed = [(c, r) for c, r in cells_results if r.status != "built" or not r.digest]
    if not failed:
        return
    lines = "; ".join(
        f"{c.id} ({c.arch.name}): {r.status}" + (f" - {r.error}" if r.error else "")
        for c, r in failed
    )
    raise PublishBlocked(
        f"not publishing {failed[0][0].image_key}: {len(failed)} arch(es) did not build: {lines}",
        "fix and rebuild the failed arch; the moving tags stay where they were",
    )


def _oci_manifests(
    client: ManifestStore, repository: str, cells_results: Sequence[CellResult]
) -> list[tuple[Cell, Manifest]]:
    return _arch_manifests(
        client, repository, [(cell, str(result.digest)) for cell, result in cells_results],
        lambda cell, ref: f"manifest {ref} is not in {repository}",
        "push the per-arch image first (hepbuild build --push)",
    )


def _sif_manifests(
    client: ManifestStore, repository: str, cells_results: Sequence[CellResult]
) -> list[tuple[Cell, Manifest]]:
    return _arch_manifests(
        client, repository, [(cell, naming.arch_tag(cell)) for cell, _ in cells_results],
        lambda cell, ref: f"no SIF at {repository}:{ref}",
        "convert and push the SIF of this arch first",
    )


def _arch_manifests(
    client: ManifestStore, repository: str, wanted: Sequence[tuple[Cell, str]],
    missing: Callable[[Cell, str], str], hint: str,
) -> list[tuple[Cell, Manifest]]:
    """The manifest of each arch (by digest or tag); the first one missing blocks publish."""
    found = []
    for cell, reference in wanted:
        manifest = client.find_manifest(repository, reference)
        if manifest is None:
            raise PublishBlocked(f"{cell.id} ({cell.arch.name}): {missing(cell, reference)}",
                                 hint)
        found.append((cell, manifest))
    return found


def _list_plan(repository: str, manifests: Sequence[tuple[Cell, Manifest]]) -> ListPlan:
    ordered = sorted(manifests, key=lambda pair: pair[0].arch.name)
    all_docker = all(m.media_type == DOCKER_MANIFEST for _, m in ordered)
    media_type = DOCKER_LIST if all_docker else OCI_INDEX
    entries = [{**m.descriptor(), "platform": _platform_of(cell)} for cell, m in ordered]
    index = {"schemaVersion": 2, "mediaType": media_type, "manifests": entries}
    data = json.dumps(index, sort_keys=True, separators=(",", ":")).encode()
    return ListPlan(repository, data, media_type)


def _platform_of(cell: Cell) -> dict[str, str]:
    platform = parse_platform(cell.arch.name)
    entry = {"architecture": platform.architecture, "os": platform.os}
    if platform.variant:
        entry["variant"] = platform.variant
    return entry


def _dated_exists(client: ManifestStore, plan: ListPlan, tag: str) -> bool:
    """True when the dated tag holds this very list; an error when it holds another."""
    existing = client.find_manifest(plan.repository, tag)
    if existing is not None and existing.digest != plan.digest:
        raise RegistryError(
            f"{plan.repository}:{tag} already exists with {existing.digest}; dated tags never move",
            "publish again later (a new time stamp), or roll back to that tag",
        )
    return existing is not None
