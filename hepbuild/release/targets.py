"""From what a user types (``hep/root-el9``) to the repositories and tag scheme of that image."""

from __future__ import annotations

import difflib
import getpass
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from hepbuild import naming
from hepbuild.config.load import load_config
from hepbuild.config.model import Base, Config, Recipe
from hepbuild.errors import UsageError
from hepbuild.release.history import TagScheme
from hepbuild.release.store import ManifestStore, open_store
from hepbuild.release.versions import repository_path


@dataclass(frozen=True)
class ImageTarget:
    image: str  # group/name-base
    recipe: Recipe
    base: Base
    repository: str  # OCI repository path in the registry (no host)
    sif_repository: str | None  # None when the recipe makes no SIF

    @property
    def scheme(self) -> TagScheme:
        return TagScheme(self.base.name)


def image_keys(config: Config) -> list[str]:
    return sorted(f"{r.id}-{b}" for r in config.recipes for b in config.matrix.bases)


def resolve_image(config: Config, image: str) -> ImageTarget:
    for recipe in config.recipes:
        for base in config.matrix.bases.values():
            if f"{recipe.id}-{base.name}" == image:
                return _target(config, image, recipe, base)
    close = difflib.get_close_matches(image, image_keys(config), n=3)
    hint = f"did you mean {', '.join(close)}?" if close else "name it as group/name-base"
    raise UsageError(f"no image {image!r} in this project", hint)


def _target(config: Config, image: str, recipe: Recipe, base: Base) -> ImageTarget:
    registry = config.profile.registry
    sif = (repository_path(registry, naming.repository(registry, recipe, sif=True))
           if "sif" in recipe.outputs else None)
    return ImageTarget(image, recipe, base,
                       repository_path(registry, naming.repository(registry, recipe)), sif)


def open_image(image: str, profile: str | None,
               env: Mapping[str, str]) -> tuple[ImageTarget, ManifestStore]:
    """The project in the current directory, the image the user named in it, and its
    profile's registry: what history and rollback both start from."""
    config = load_config(Path.cwd(), profile=profile, env=env)
    target = resolve_image(config, image)
    return target, open_store(config.profile.registry, env)


def current_user(env: Mapping[str, str]) -> str:
    """Who acts: the GitLab user in CI, else the login name."""
    return env.get("GITLAB_USER_LOGIN") or env.get("USER") or getpass.getuser()
