"""``hepbuild pull oras://REF [--arch ARCH] [--force] FILE``: fetch a SIF pushed over ORAS."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from hepbuild import output
from hepbuild.commands.push import add_tls_arguments, client_from_args
from hepbuild.errors import UsageError
from hepbuild.registry.oras import pull_sif
from hepbuild.registry.reference import parse_reference


def register(sub: Any) -> None:
    parser = sub.add_parser("pull", help="pull a SIF from a registry (oras://REF) into FILE")
    add_tls_arguments(parser)
    parser.add_argument("source", metavar="oras://REF")
    parser.add_argument(
        "file", type=Path, metavar="FILE",
        help="the SIF to write; a folder gets the file under the name it was pushed with",
    )
    parser.add_argument("--force", action="store_true", help="replace FILE if it exists")
    parser.add_argument(
        "--arch", help="architecture to pick from a multi-arch index (default: this host's)"
    )
    parser.add_argument("--json", action="store_true", help="print the result as JSON")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    if not args.source.startswith("oras://"):
        raise UsageError(
            f"pull reads SIFs over ORAS, not {args.source!r}",
            "write oras://HOST/REPO:TAG; for OCI images use `hepbuild convert docker://…`",
        )
    ref = parse_reference(args.source)
    with client_from_args(args, ref) as client:
        result = pull_sif(client, ref, args.file, args.arch, force=args.force)
    if args.json:
        output.emit_json(result)
    else:
        row = result.row()
        row["size"] = output.human_size(result.size)
        row["digest"] = output.short_digest(result.digest)
        output.print_table([row], ("reference", "arch", "digest", "size", "file"))
    return 0
