"""``hepbuild render``: write each cell's Dockerfile, Apptainer def and context; no build tools."""

from __future__ import annotations

import argparse
from pathlib import Path

from hepbuild.cells import expand_matrix, matrix_entries, select_cells
from hepbuild.commands.matrix import add_selection_arguments
from hepbuild.config.load import load_config
from hepbuild.output import emit_json, print_table, progress
from hepbuild.render import render_cell


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser("render", help="render Dockerfiles and Apptainer definitions")
    add_selection_arguments(parser)
    parser.add_argument("--out", default="build", type=Path,
                        help="output directory; each cell goes to OUT/<cell id>/ (default: build)")
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    config = load_config(Path.cwd(), args.profile)
    cells = select_cells(expand_matrix(config).cells, args.select)
    rows = []
    for index, cell in enumerate(cells, 1):
        rendered = render_cell(config, cell, args.out)
        if not args.json:
            progress(index, len(cells), f"rendered {cell.id}")
        rows.append({
            "cell": cell.id, "directory": str(rendered.directory),
            "base_image": rendered.base_image, "content_key": rendered.content_key,
            "templates": list(rendered.templates),
            "matrix_entries": list(matrix_entries(config, cell)),
        })
    if args.json:
        emit_json({"profile": config.profile.name, "rendered": rows})
    else:
        print_table(rows, ("cell", "directory", "content_key"))
    return 0
