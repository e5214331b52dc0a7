"""Typed configuration: what matrix.yaml and recipe.yaml mean once loaded and validated.

Everything here is frozen plain data. Loading (with every problem reported at once) lives in
``hepbuild.config.load``; nothing in this module reads files, the network or the environment.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from hepbuild.platforms import Arch

Family = Literal["yum", "apt"]


@dataclass(frozen=True)
class Bootstrap:
    """How to make a base locally instead of pulling it.

    ``method`` is ``mmdebstrap`` (Debian family), ``busybox`` (tiny test bases from Debian's
    busybox-static) or ``yum-installroot`` (EL family; documented, not exercised here).
    """

    method: str
    suite: str | None = None
    variant: str | None = None
    mirror: str | None = None
    packages: tuple[str, ...] = ()
    repos: tuple[str, ...] = ()


@dataclass(frozen=True)
class Base:
    name: str  # sl5, sl6, sl7, centos7, el9, debian12
    family: Family
    arches: tuple[str, ...]  # centre arch names this base exists for
    images: dict[str, str]  # arch name -> image reference (pinned by digest where possible)
    description: str = ""
    repo_fixups: tuple[str, ...] = ()  # shell lines run first, e.g. point yum at vault
    bootstrap: Bootstrap | None = None
    needs_vsyscall: bool = False  # SL5/SL6 glibc needs vsyscall=emulate on the host
    line: int | None = None  # where it is defined in matrix.yaml


@dataclass(frozen=True)
class Registry:
    name: str
    url: str  # host[:port][/namespace], no scheme
    kind: Literal["harbor", "distribution"] = "distribution"
    insecure: bool = False  # plain HTTP or unverified TLS; only for local registries
    ca_file: str | None = None
    project: str | None = None  # Harbor project; images go to url/project/...
    public: bool = False  # create the Harbor project public
    api: str | None = None  # Harbor REST root, e.g. https://harbor.example/api/v2.0
    sif_repo_suffix: str = ""  # where SIFs go next to OCI images (see release docs)

    @property
    def host(self) -> str:
        """``host[:port]`` of ``url``, the part a client connects to and logins are kept for."""
        return self.url.split("/", 1)[0]


@dataclass(frozen=True)
class Profile:
    name: str
    registry: Registry
    bases: dict[str, dict[str, str]] = field(default_factory=dict)  # base -> arch -> image override
    base_registry: str | None = None  # where locally bootstrapped bases are stored
    bootstrap: bool = False  # bootstrap bases locally (hepbuild bases)
    bases_enabled: tuple[str, ...] = ()  # restrict the matrix to these bases; empty = all
    arches_enabled: tuple[str, ...] = ()  # restrict the matrix to these arches; empty = all


@dataclass(frozen=True)
class Rule:
    """An include or exclude rule over cells, with the reason shown by ``matrix --explain``."""

    action: Literal["include", "exclude"]
    recipe: str = "*"  # glob over group/name
    base: str = "*"
    arch: str = "*"
    reason: str = ""
    line: int | None = None


@dataclass(frozen=True)
class Runner:
    """GitLab runner tags per arch: native where the site has such runners, else qemu."""

    arch: str
    tags: tuple[str, ...]
    native: bool


@dataclass(frozen=True)
class Matrix:
    path: Path
    arches: tuple[Arch, ...]
    bases: dict[str, Base]
    profiles: dict[str, Profile]
    default_profile: str
    rules: tuple[Rule, ...] = ()
    runners: dict[str, Runner] = field(default_factory=dict)
    templates: Path | None = None  # custom template directory (matrix.yaml `templates:`)
    source: str | None = None  # stamped as org.opencontainers.image.source when set


@dataclass(frozen=True)
class FileCopy:
    src: str  # relative to the recipe directory; never outside it
    dest: str  # absolute path in the image


@dataclass(frozen=True)
class Packages:
    common: tuple[str, ...] = ()
    yum: tuple[str, ...] = ()
    apt: tuple[str, ...] = ()

    def for_family(self, family: Family) -> tuple[str, ...]:
        extra = self.yum if family == "yum" else self.apt
        return tuple(sorted(set(self.common) | set(extra)))


@dataclass(frozen=True)
class Recipe:
    group: str  # directory under recipes/
    name: str
    version: str
    directory: Path
    description: str = ""
    maintainers: tuple[str, ...] = ()
    bases: tuple[str, ...] = ()  # empty: every base in the matrix
    arches: tuple[str, ...] = ()  # empty: every arch the base has
    packages: Packages = Packages()
    env: dict[str, str] = field(default_factory=dict)
    labels: dict[str, str] = field(default_factory=dict)
    files: tuple[FileCopy, ...] = ()
    steps: tuple[str, ...] = ()  # shell build steps
    test: str | None = None  # shell command run inside each built image
    depends_on: str | None = None  # group/name of the parent recipe (FROM its image, same cell)
    outputs: tuple[str, ...] = ("oci",)  # any of oci, sif, sandbox
    workdir: str | None = None
    entrypoint: tuple[str, ...] | None = None
    cmd: tuple[str, ...] | None = None
    dockerfile: Path | None = None  # plain-Dockerfile recipe; used as is for OCI

    @property
    def id(self) -> str:
        return f"{self.group}/{self.name}"


@dataclass(frozen=True)
class Config:
    root: Path
    matrix: Matrix
    recipes: tuple[Recipe, ...]
    profile: Profile

    def recipe(self, recipe_id: str) -> Recipe:
        for r in self.recipes:
            if r.id == recipe_id:
                return r
        raise KeyError(recipe_id)


@dataclass(frozen=True)
class Cell:
    """One build: recipe x base x arch. ``id`` is stable and used everywhere."""

    recipe: Recipe
    base: Base
    arch: Arch

    @property
    def id(self) -> str:
        return f"{self.recipe.group}/{self.recipe.name}-{self.base.name}-{self.arch.name}"

    @property
    def image_key(self) -> str:
        """The multi-arch image this cell belongs to: same id without the arch."""
        return f"{self.recipe.group}/{self.recipe.name}-{self.base.name}"
