"""``hepbuild matrix``: the resolved build plan as cell ids, and why the others are dropped."""

from __future__ import annotations

import argparse
from pathlib import Path

from hepbuild.cells import describe_cell, expand_matrix, select_cells, select_dropped
from hepbuild.config.load import load_config
from hepbuild.output import emit_json, print_table

COLUMNS = ("cell", "recipe", "base", "arch", "platform", "parent")


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser("matrix", help="list the cells the matrix expands to")
    add_selection_arguments(parser)
    parser.add_argument("--explain", action="store_true",
                        help="also list every dropped cell with the reason it is dropped")
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")
    parser.set_defaults(func=run)


def add_selection_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--profile", default=None,
                        help="profile from matrix.yaml (default: $HEPBUILD_PROFILE, then local)")
    parser.add_argument("--select", "--only", dest="select", action="append", default=[],
                        metavar="GLOB", help="only cells whose id matches (repeatable)")


def run(args: argparse.Namespace) -> int:
    config = load_config(Path.cwd(), args.profile)
    expansion = expand_matrix(config)
    cells = select_cells(expansion.cells, args.select)
    rows = [describe_cell(cell, config) for cell in cells]
    dropped = [{"cell": d.cell_id, "reason": d.reason}
               for d in select_dropped(expansion.dropped, args.select)]
    if args.json:
        payload: dict[str, object] = {"profile": config.profile.name, "cells": rows}
        if args.explain:
            payload["dropped"] = dropped
        emit_json(payload)
        return 0
    print_table(rows, COLUMNS)
    if args.explain:
        print(f"\ndropped ({len(dropped)}):")
        print_table(dropped, ("cell", "reason"))
    return 0
