"""The project as the planner sees it at one revision: config, cells, and per-cell renders.

The loading, expansion and rendering belong to the recipes code (hepbuild.config.load,
hepbuild.cells, hepbuild.render); this module only calls them and caches what each cell
rendered, so a plan renders a cell at most once.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from hepbuild.config.model import Cell, Config


@dataclass(frozen=True)
class RenderInfo:
    content_key: str
    templates: tuple[str, ...]  # template files the cell rendered, relative to templates/


Renderer = Callable[[Config, Cell], RenderInfo]


@dataclass
class Snapshot:
    config: Config
    cells: tuple[Cell, ...]  # parents before children
    renderer: Renderer
    _renders: dict[str, RenderInfo] = field(default_factory=dict)

    def render(self, cell: Cell) -> RenderInfo:
        if cell.id not in self._renders:
            self._renders[cell.id] = self.renderer(self.config, cell)
        return self._renders[cell.id]

    def cell(self, cell_id: str) -> Cell:
        for cell in self.cells:
            if cell.id == cell_id:
                return cell
        raise KeyError(cell_id)


def load_snapshot(root: Path, profile: str | None, env: Mapping[str, str]) -> Snapshot:
    """Load and expand the project at ``root`` with the recipes code."""
    from hepbuild.cells import expand_matrix
    from hepbuild.config.load import load_config

    config = load_config(root, profile=profile, env=dict(env))
    cells = tuple(expand_matrix(config).cells)
    return Snapshot(config, cells, render_with_hepbuild)


def render_with_hepbuild(config: Config, cell: Cell) -> RenderInfo:
    """Render in memory and keep only what planning needs (the key and the templates used).

    The base digest is left out: a base pinned by digest already carries it in the rendered
    FROM line, and a moving base tag is followed by the scheduled full rebuild.
    """
    from hepbuild.render import render_texts

    rendered = render_texts(config, cell, None)
    return RenderInfo(rendered.content_key, tuple(rendered.templates))
