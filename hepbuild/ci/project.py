"""The project as the planner sees it at one revision: config, cells, and per-cell facts.

Loading, expansion and rendering belong to the recipes code (hepbuild.config.load,
hepbuild.cells, hepbuild.render); this module calls them and caches the two facts planning
needs per cell: the content key the build will stamp, and the template files it renders.
Both are computed only for the cells that need them, so a one-recipe change renders little.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from hepbuild.config.model import Cell, Config

KeyFunction = Callable[[Config, Cell], str]
TemplatesFunction = Callable[[Config, Cell], tuple[str, ...]]


@dataclass
class Snapshot:
    config: Config
    cells: tuple[Cell, ...]  # parents before children
    key_function: KeyFunction
    templates_function: TemplatesFunction
    _keys: dict[str, str] = field(default_factory=dict)
    _templates: dict[str, tuple[str, ...]] = field(default_factory=dict)

    def content_key(self, cell: Cell) -> str:
        if cell.id not in self._keys:
            self._keys[cell.id] = self.key_function(self.config, cell)
        return self._keys[cell.id]

    def templates(self, cell: Cell) -> tuple[str, ...]:
        if cell.id not in self._templates:
            self._templates[cell.id] = self.templates_function(self.config, cell)
        return self._templates[cell.id]


def load_snapshot(root: Path, profile: str | None, env: Mapping[str, str]) -> Snapshot:
    """Load and expand the project at ``root`` with the recipes code."""
    from hepbuild.cells import expand_matrix
    from hepbuild.config.load import load_config

    config = load_config(root, profile=profile, env=dict(env))
    cells = tuple(expand_matrix(config).cells)
    return Snapshot(config, cells, BuildKeys(env), rendered_templates)


class BuildKeys:
    """The content key exactly as ``hepbuild build`` computes it: the base digest for a root
    cell, the parent's own content key for a child (``build.pipeline.parent_key_of``)."""

    def __init__(self, env: Mapping[str, str]) -> None:
        self.authfile = env.get("REGISTRY_AUTH_FILE") or None
        self._digests: dict[str, str | None] = {}

    def __call__(self, config: Config, cell: Cell) -> str:
        from hepbuild.build.pipeline import parent_key_of
        from hepbuild.render import content_key_of

        return content_key_of(config, cell, self.base_digest(config, cell),
                              parent_key=parent_key_of(config, cell, self.base_digest))

    def base_digest(self, config: Config, cell: Cell) -> str | None:
        from hepbuild.build.pipeline import base_digest_of
        from hepbuild.cells import base_image

        if cell.recipe.depends_on:
            return None
        ref = base_image(config, cell)
        if ref not in self._digests:
            tls_verify = not config.profile.registry.insecure
            self._digests[ref] = base_digest_of(ref, tls_verify=tls_verify, authfile=self.authfile)
        return self._digests[ref]


def rendered_templates(config: Config, cell: Cell) -> tuple[str, ...]:
    """The template files a cell renders, as the renderer reports them (a throwaway render)."""
    from hepbuild.render import render_cell

    with tempfile.TemporaryDirectory(prefix="hepbuild-plan-render-") as tmp:
        rendered = render_cell(config, cell, Path(tmp))
    return tuple(os.fspath(t) for t in rendered.templates)
