"""How built images leave this machine in ``hepbuild build --push``.

First each cell's per-arch image (``buildah push``) and, once the outputs are written, its
SIF (over ORAS). Then each image whose every arch is good is released by the release code
(``hepbuild.release``): the dated tag, then the moving tags, and the build records. That
is the same path ``hepbuild publish`` takes, so the lists are identical whichever wrote them.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from dataclasses import replace
from pathlib import Path

from hepbuild import naming, output
from hepbuild.build.buildah import Buildah
from hepbuild.build.results import BuiltImage
from hepbuild.cells import expand_matrix
from hepbuild.config.model import Cell, Config
from hepbuild.registry.oras import push_sif
from hepbuild.release.publish import (
    BuildInputs,
    HarborSteps,
    Provenance,
    Published,
    complete_images,
    pair_cells,
    publish_all,
    recipe_commit,
)
from hepbuild.release.store import RegistryStore
from hepbuild.release.targets import current_user


def pushable(image: BuiltImage) -> bool:
    return image.status == "built" and image.test_status in ("passed", "none")


def push_cell_images(
    buildah: Buildah, images: Sequence[BuiltImage], targets: Mapping[str, str]
) -> list[BuiltImage]:
    """Push each good image to ``targets[cell_id]``; the pushed digest replaces the local one."""
    pushed: list[BuiltImage] = []
    candidates = [i for i in images if pushable(i) and i.cell_id in targets]
    for done, image in enumerate(images, start=1):
        if image not in candidates:
            pushed.append(image)
            continue
        dest = targets[image.cell_id]
        with open(image.log, "ab") as log:
            digest = buildah.push(image.local_ref, dest, log=log)
        output.progress(done, len(images), f"pushed {dest}@{digest}")
        pushed.append(replace(image, pushed_ref=dest, digest=digest))
    return pushed


def push_cell_sifs(
    store: RegistryStore, config: Config, cells: Sequence[Cell],
    outputs: Mapping[str, Sequence[str]],
) -> list[str]:
    """Push each cell's SIF output to ``<repository>-sif:<per-arch tag>``; returns the refs."""
    registry = config.profile.registry
    pushed = []
    for cell in cells:
        sif = next((Path(p) for p in outputs.get(cell.id, ()) if p.endswith(".sif")), None)
        if sif is None:
            continue
        ref = f"{naming.repository(registry, cell.recipe, sif=True)}:{naming.arch_tag(cell)}"
        result = push_sif(store.client, sif, ref, cell.arch.name)
        output.info(f"pushed {ref}@{result.digest} ({output.human_size(result.size)})")
        pushed.append(ref)
    return pushed


def release_images(
    store: RegistryStore, config: Config, images: Sequence[BuiltImage],
    outputs: Mapping[str, list[str]], *, env: Mapping[str, str], when: dt.datetime,
    records_dir: Path, harbor: HarborSteps | None = None,
) -> Published:
    """Dated then moving tags for every image this run touched, all arches or none.

    Arches of an image that this run did not build are taken from the registry, so a list
    never drops an arch; an arch that is missing there too blocks that image (its moving tags
    stay where they were) and is reported, not raised.
    """
    cells = expand_matrix(config).cells
    pushed = [i for i in images if i.pushed_ref or i.status != "built"]
    inputs = complete_images(store, config, cells, BuildInputs(list(pushed), dict(outputs)))
    provenance = Provenance(current_user(env), recipe_commit(config.root), when)
    published = publish_all(store, config, pair_cells(cells, inputs), inputs, provenance,
                            records_dir, harbor)
    for message in published.blocked:
        output.warn(message)
    return published
