"""``hepbuild history IMAGE``: the versions of an image, where its moving tags point, records."""

from __future__ import annotations

import argparse
import os
from typing import Any

from hepbuild import output
from hepbuild.release.history import VersionRow, read_history
from hepbuild.release.targets import open_image

COLUMNS = ("tag", "version", "built", "digest", "moving", "platforms", "records", "rollbacks")


def register(sub: Any) -> None:
    parser = sub.add_parser("history", help="list the published versions of an image")
    parser.add_argument("image", metavar="IMAGE", help="group/name-base, e.g. hep/root-el9")
    parser.add_argument("--profile", default=None, help="profile in matrix.yaml (its registry)")
    parser.add_argument("--json", action="store_true", help="print the history as JSON")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    target, store = open_image(args.image, args.profile, os.environ)
    history = read_history(store, target.repository, target.scheme)
    if args.json:
        output.emit_json(history)
    else:
        output.print_table([_row(v) for v in history.versions], COLUMNS)
        if not history.versions:
            output.info(f"{target.repository} has no published versions yet")
    return 0


def _row(version: VersionRow) -> dict[str, str | None]:
    commits = sorted({r.recipe_commit[:10] for r in version.records if r.recipe_commit})
    where = f"commit {', '.join(commits)}" if commits else "no git commit"
    records = f"{len(version.records)} ({where})" if version.records else None
    return {
        "tag": version.tag,
        "version": version.version,
        "built": version.built,
        "digest": output.short_digest(version.digest),
        "moving": ", ".join(version.moving),
        "platforms": ", ".join(version.platforms),
        "records": records,
        "rollbacks": ", ".join(f"{r.time} by {r.user}" for r in version.rollbacks) or None,
    }



