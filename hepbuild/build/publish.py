"""Pushing built images: one per cell and arch, then one multi-arch list per image tag.

These two functions are the only way images leave this machine in ``hepbuild build``, so
the release step can swap them (dated tags, build records) without touching the builder.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from dataclasses import replace

from hepbuild import output
from hepbuild.build.buildah import Buildah
from hepbuild.build.results import BuiltImage, PushedList
from hepbuild.platforms import Arch


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


def push_lists(
    buildah: Buildah, images: Sequence[BuiltImage], list_refs: Mapping[str, str],
    arch_of: Mapping[str, Arch],
) -> list[PushedList]:
    """One list per image key, holding every arch that was pushed, pushed with ``--all``.

    Built only now, after every arch cell of the image finished, so a list never misses an
    arch that was still building. ``arch_of`` maps cell id to its Arch.
    """
    by_key: dict[str, list[BuiltImage]] = {}
    for image in images:
        by_key.setdefault(image.image_key, []).append(image)
    lists: list[PushedList] = []
    for key in sorted(by_key):
        members = [i for i in by_key[key] if i.pushed_ref]
        missing = tuple(i.cell_id for i in by_key[key] if not i.pushed_ref)
        if not members or key not in list_refs:
            continue
        if missing:
            output.warn(f"list {list_refs[key]} lacks {', '.join(missing)} (not built or failed)")
        lists.append(_push_one_list(buildah, key, list_refs[key], members, missing, arch_of))
    return lists


def _push_one_list(buildah: Buildah, key: str, ref: str, members: Sequence[BuiltImage],
                   missing: tuple[str, ...], arch_of: Mapping[str, Arch]) -> PushedList:
    # A unique local name per run, so parallel runs never add to each other's list.
    local = f"localhost/hepbuild-lists/{uuid.uuid4().hex}:list"
    buildah.manifest_create(local)
    try:
        for image in sorted(members, key=lambda i: i.cell_id):
            assert image.pushed_ref is not None
            buildah.manifest_add(local, image.pushed_ref, arch_of[image.cell_id])
        digest = buildah.manifest_push(local, ref)
    finally:
        buildah.manifest_remove(local)
    platforms = tuple(sorted(i.platform for i in members))
    output.info(f"pushed list {ref}@{digest} ({', '.join(platforms)})")
    return PushedList(key, ref, digest, platforms, missing)
