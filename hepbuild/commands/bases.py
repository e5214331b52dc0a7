"""``hepbuild bases``: bootstrap the profile's base images and push them to its registry."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from hepbuild import output
from hepbuild.build.bases import base_targets, ensure_bases
from hepbuild.build.options import add_buildah_options, make_buildah
from hepbuild.config.load import load_config
from hepbuild.errors import UsageError


def register(sub: Any) -> None:
    parser = sub.add_parser(
        "bases", help="bootstrap the profile's bases (mmdebstrap or busybox) into its registry"
    )
    add_buildah_options(parser)
    parser.add_argument("--arch", action="append", default=[], metavar="ARCH",
                        help="only this architecture (repeatable; default: every one enabled)")
    parser.add_argument("--rebuild", action="store_true",
                        help="bootstrap again even when the registry already has the base")
    parser.add_argument("--deb-dir", action="append", default=[], type=Path, metavar="DIR",
                        help="where to look for busybox-static .debs before downloading")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    root = Path.cwd()
    config = load_config(root, profile=args.profile)
    if not config.profile.bootstrap:
        raise UsageError(f"profile {config.profile.name} does not bootstrap its bases",
                         "use --profile local, or set bootstrap: true in the profile")
    bases = list(config.matrix.bases.values())
    targets = base_targets(bases, config.profile, args.arch)
    if not targets:
        raise UsageError("no base to bootstrap for this profile and --arch",
                         "check bases_enabled/arches_enabled of the profile in matrix.yaml")
    buildah = make_buildah(args, config.profile.registry)
    results = ensure_bases(buildah, targets, work_root=root / "build" / "bases",
                           log_dir=root / "build" / "logs", cache_dir=root / ".hepbuild" / "debs",
                           deb_dirs=args.deb_dir, rebuild=args.rebuild)
    if args.json:
        output.emit_json({"bases": results})
    else:
        rows = [{"base": r.base, "arch": r.arch, "status": r.status, "reference": r.ref,
                 "digest": output.short_digest(r.digest), "time": r.seconds} for r in results]
        output.print_table(rows, ["base", "arch", "status", "reference", "digest", "time"])
    return 0
