"""The child pipeline's image job: the immutable dated list of one image, from the registry.

Each arch job pushes its own per-arch tag. The image job runs after all of them and writes the
image's multi-arch list under its dated tag only (``naming.dated_tag`` at the pipeline's
creation time), from what the registry holds, so arches skipped as up to date still appear.
The moving tags (version, latest) are left to the publish stage, which finds the same dated
list (``release.versions`` makes every list) and moves them only when the whole image is good.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass

from hepbuild import naming
from hepbuild.config.model import Cell, Config
from hepbuild.errors import UsageError
from hepbuild.release.publish import inputs_from_registry
from hepbuild.release.store import ManifestStore
from hepbuild.release.versions import push_dated


@dataclass(frozen=True)
class AssembledList:
    image: str
    ref: str  # the dated tag's full reference
    digest: str
    cells: tuple[str, ...]
    platforms: tuple[str, ...]


def assemble_list(
    store: ManifestStore, config: Config, cells: Sequence[Cell], when: dt.datetime
) -> AssembledList:
    """Write the dated list of one image; every arch of it must be in the registry."""
    if not cells:
        raise UsageError("no cells to assemble a list from")
    inputs = inputs_from_registry(store, config, cells)
    pairs = list(zip(cells, inputs.images, strict=True))
    registry = config.profile.registry
    cell, plans, dated = push_dated(store, pairs, when, registry=registry)
    return AssembledList(
        image=cell.image_key,
        ref=f"{naming.repository(registry, cell.recipe)}:{dated}",
        digest=plans[0].digest,
        cells=tuple(sorted(c.id for c in cells)),
        platforms=tuple(sorted(c.arch.platform for c in cells)),
    )
