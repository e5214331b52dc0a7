"""The child pipeline's image job: one multi-arch list from the per-arch tags in the registry.

Each arch job pushes its own per-arch tag. The image job runs after all of them and writes
the list from what the registry holds, so arches that were skipped as up to date (and so not
built in this pipeline) still appear in the list, and no job ever overwrites another's list.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass

from hepbuild import naming
from hepbuild.ci.keys import split_ref
from hepbuild.config.model import Cell, Registry
from hepbuild.errors import RegistryError
from hepbuild.registry import media
from hepbuild.registry.client import RegistryClient


@dataclass(frozen=True)
class ListEntry:
    cell_id: str
    ref: str
    digest: str
    media_type: str
    size: int


@dataclass(frozen=True)
class AssembledList:
    image: str
    ref: str
    digest: str
    entries: tuple[ListEntry, ...]
    missing: tuple[str, ...]  # cells of the image with no per-arch tag in the registry


def list_document(cells: Sequence[Cell], entries: Sequence[ListEntry]) -> tuple[bytes, str]:
    """The index bytes and media type; a Docker list when every member is a Docker manifest."""
    arch_of = {cell.id: cell.arch for cell in cells}
    docker = all(e.media_type == media.DOCKER_MANIFEST for e in entries)
    list_type = media.DOCKER_LIST if docker else media.OCI_INDEX
    manifests = []
    for entry in sorted(entries, key=lambda e: e.cell_id):
        arch = arch_of[entry.cell_id]
        platform = {"architecture": arch.oci, "os": "linux"}
        if arch.variant:
            platform["variant"] = arch.variant
        manifests.append({"mediaType": entry.media_type, "digest": entry.digest,
                          "size": entry.size, "platform": platform})
    document = {"schemaVersion": 2, "mediaType": list_type, "manifests": manifests}
    return json.dumps(document, indent=2, sort_keys=True).encode(), list_type


def assemble_list(
    client: RegistryClient, registry: Registry, cells: Sequence[Cell]
) -> AssembledList:
    """Write ``naming.list_ref`` for the cells of one image (all arches of one recipe/base)."""
    if not cells:
        raise RegistryError("no cells to assemble a list from")
    entries, missing = _present_entries(client, registry, cells)
    list_ref = naming.list_ref(registry, cells[0])
    if not entries:
        raise RegistryError(
            f"no per-arch image of {cells[0].image_key} is in the registry; nothing to list",
            "the arch jobs must push first (HEPBUILD_BUILD_ARGS=--push)",
        )
    data, list_type = list_document(cells, entries)
    _, repo, tag = split_ref(list_ref)
    digest = client.put_manifest(repo, tag, data, list_type)
    return AssembledList(cells[0].image_key, list_ref, digest, tuple(entries), tuple(missing))


def _present_entries(
    client: RegistryClient, registry: Registry, cells: Sequence[Cell]
) -> tuple[list[ListEntry], list[str]]:
    entries: list[ListEntry] = []
    missing: list[str] = []
    for cell in cells:
        ref = naming.arch_ref(registry, cell)
        _, repo, tag = split_ref(ref)
        if client.manifest_exists(repo, tag) is None:
            missing.append(cell.id)
            continue
        manifest = client.get_manifest(repo, tag, accept=media.IMAGE_TYPES)
        if manifest.is_index:
            raise RegistryError(f"{ref} is a list, not a single-arch image",
                                "per-arch tags must hold one image each")
        entries.append(ListEntry(cell.id, ref, manifest.digest, manifest.media_type,
                                 len(manifest.data)))
    return entries, missing
