"""``hepbuild lint``: every problem in matrix.yaml and the recipes at once, then a dry render."""

from __future__ import annotations

import argparse
from dataclasses import asdict
from pathlib import Path

from hepbuild.cells import expand_matrix
from hepbuild.config.load import load_config
from hepbuild.errors import ConfigError, Problem, RenderError
from hepbuild.output import emit_json, info
from hepbuild.render import render_texts


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser("lint", help="check matrix.yaml, recipes and templates")
    parser.add_argument("--profile", default=None, help="profile to check (default: every one)")
    parser.add_argument("--json", action="store_true", help="print the problems as JSON")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    try:
        return _lint(args)
    except ConfigError as exc:
        if not args.json:
            raise  # cli.py prints every problem with its file:line and hint
        emit_json({"problems": [asdict(p) for p in exc.problems], "ok": False})
        return exc.exit_code


def _lint(args: argparse.Namespace) -> int:
    root = Path.cwd()
    config = load_config(root, args.profile)  # raises ConfigError with every problem found
    profiles = [args.profile] if args.profile else sorted(config.matrix.profiles)
    problems: list[Problem] = []
    total = 0
    for name in profiles:
        profile_config = load_config(root, name)
        for cell in expand_matrix(profile_config).cells:
            total += 1
            try:
                render_texts(profile_config, cell)
            except ConfigError as exc:
                problems.extend(exc.problems)
            except RenderError as exc:
                message = _without_cell(exc.message, cell.id)
                problems.append(Problem(f"cell {cell.id}", None, message, exc.hint))
    if problems:
        raise ConfigError(problems)
    if args.json:
        emit_json({"problems": [], "ok": True, "profiles": profiles, "cells_rendered": total})
    else:
        info(f"lint: no problems ({total} cells rendered across profiles {', '.join(profiles)})")
    return 0


def _without_cell(message: str, cell_id: str) -> str:
    """A render error names its cell for `hepbuild render`; lint already puts the cell first,
    so the second mention goes."""
    return message.removeprefix(f"cell {cell_id}: ").removesuffix(f" (rendering {cell_id})")
