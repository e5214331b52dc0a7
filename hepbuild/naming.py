"""Where a cell's images live and what their tags are. One place, so build, publish,
history and the CI planner can never disagree.

    repository   <registry>[/<project>]/<group>/<name>          OCI images
                 <registry>[/<project>]/<group>/<name>-sif      SIF files over ORAS
    per-arch     <version>-<base>-<arch>                        e.g. 1.2-sl7-x86_64
    moving       <version>-<base>  and  <base>-latest           multi-arch list (or SIF index)
    immutable    <version>-<base>-<YYYYmmddTHHMMSSZ>            dated, never moved
"""

from __future__ import annotations

import datetime as _dt
import re

from hepbuild.config.model import Cell, Recipe, Registry

_TAG_BAD = re.compile(r"[^A-Za-z0-9_.-]")


def tag_safe(text: str) -> str:
    """Turn free text into a valid tag part (OCI tags allow ``[A-Za-z0-9_.-]``)."""
    return _TAG_BAD.sub("-", text).lstrip(".-")[:128]


def repository(registry: Registry, recipe: Recipe, *, sif: bool = False) -> str:
    parts = [registry.url.rstrip("/")]
    if registry.project:
        parts.append(registry.project)
    parts.append(f"{recipe.group}/{recipe.name}".lower())
    repo = "/".join(parts)
    return f"{repo}-sif" if sif else repo


def arch_tag(cell: Cell) -> str:
    return tag_safe(f"{cell.recipe.version}-{cell.base.name}-{cell.arch.name}")


def version_tag(cell: Cell) -> str:
    return tag_safe(f"{cell.recipe.version}-{cell.base.name}")


def latest_tag(cell: Cell) -> str:
    return tag_safe(f"{cell.base.name}-latest")


def dated_tag(cell: Cell, when: _dt.datetime) -> str:
    stamp = when.astimezone(_dt.timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    return tag_safe(f"{cell.recipe.version}-{cell.base.name}-{stamp}")


def arch_ref(registry: Registry, cell: Cell) -> str:
    return f"{repository(registry, cell.recipe)}:{arch_tag(cell)}"


def list_ref(registry: Registry, cell: Cell) -> str:
    return f"{repository(registry, cell.recipe)}:{version_tag(cell)}"


def local_name(cell: Cell) -> str:
    """The name buildah keeps a built cell under in its local store."""
    return f"localhost/hepbuild/{cell.recipe.group}/{cell.recipe.name}:{arch_tag(cell)}".lower()
