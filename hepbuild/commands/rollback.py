"""``hepbuild rollback IMAGE --to TAG``: move the moving tags (OCI and SIF) back to TAG."""

from __future__ import annotations

import argparse
import datetime as dt
import os
from pathlib import Path
from typing import Any

from hepbuild import output
from hepbuild.release.records import RECORDS_DIR
from hepbuild.release.rollback import RollbackRequest, rollback
from hepbuild.release.targets import current_user, open_image


def register(sub: Any) -> None:
    parser = sub.add_parser("rollback", help="point an image's moving tags at an earlier version")
    parser.add_argument("image", metavar="IMAGE", help="group/name-base, e.g. hep/root-el9")
    parser.add_argument("--to", required=True, metavar="TAG",
                        help="dated tag (or version tag) to go back to; see hepbuild history")
    parser.add_argument("--reason", required=True, metavar="TEXT",
                        help="why (required), kept in the rollback record")
    parser.add_argument("--profile", default=None, help="profile in matrix.yaml (its registry)")
    parser.add_argument("--json", action="store_true", help="print what moved as JSON")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    target, store = open_image(args.image, args.profile, os.environ)
    request = RollbackRequest(
        image=target.image, repository=target.repository, sif_repository=target.sif_repository,
        scheme=target.scheme, to_tag=args.to, user=current_user(os.environ), reason=args.reason,
    )
    done = rollback(store, request, dt.datetime.now(dt.timezone.utc), Path.cwd() / RECORDS_DIR)
    if args.json:
        output.emit_json(done)
        return 0
    if done.already_there:
        output.info(f"{done.image} is already at {done.to_tag}: its moving tags point there; "
                    "nothing moved and no record was written")
        return 0
    rows = [{"repository": m.repository, "tag": m.tag, "from": output.short_digest(m.old_digest),
             "to": output.short_digest(m.new_digest)} for m in done.moves]
    output.print_table(rows, ("repository", "tag", "from", "to"))
    output.info(f"rolled back {done.image} to {done.to_tag} by {done.user}; "
                f"record {output.short_digest(done.record_digest)}")
    return 0
