"""The ``hepbuild`` command. The only place that prints errors and exits.

Each subcommand lives in ``hepbuild/commands/<name>.py`` and provides
``register(subparsers) -> None``; the parser it adds sets ``func`` to a function
``(args) -> int``. Commands are discovered, so adding one touches no other file.
"""

from __future__ import annotations

import argparse
import importlib
import os
import pkgutil
import sys
import traceback
from collections.abc import Sequence

from hepbuild import __version__, commands
from hepbuild.errors import HepbuildError, UsageError
from hepbuild.tools import redact


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="hepbuild",
        description="Build, convert and publish container images for HEP computing centres.",
    )
    parser.add_argument("--version", action="version", version=f"hepbuild {__version__}")
    parser.add_argument("--debug", action="store_true", help="show tracebacks for errors")
    parser.add_argument(
        "-C",
        "--directory",
        default=None,
        metavar="DIR",
        help="project directory with matrix.yaml and recipes/ (default: the current one)",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for module_info in sorted(pkgutil.iter_modules(commands.__path__), key=lambda m: m.name):
        if module_info.name.startswith("_"):
            continue
        module = importlib.import_module(f"hepbuild.commands.{module_info.name}")
        module.register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help(sys.stderr)
        return 2
    try:
        if args.directory:
            _enter(args.directory)
        return int(args.func(args) or 0)
    except HepbuildError as exc:
        if args.debug:
            traceback.print_exc()
        print(redact(exc.render()), file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        return 141
    except Exception:  # an unexpected crash: say so, and give a report that can be pasted
        if args.debug:
            traceback.print_exc()
        else:
            kind, value, _ = sys.exc_info()
            print(
                redact(
                    f"internal error: {kind.__name__ if kind else '?'}: {value}\n"
                    "  this is a bug in hepbuild; run again with --debug and report the traceback"
                ),
                file=sys.stderr,
            )
        return 70


def _enter(directory: str) -> None:
    try:
        os.chdir(directory)
    except OSError as exc:
        raise UsageError(f"cannot use -C {directory}: {exc.strerror}",
                         "name the project directory that holds matrix.yaml") from None


if __name__ == "__main__":
    sys.exit(main())
