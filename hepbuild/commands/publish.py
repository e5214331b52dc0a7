"""``hepbuild publish``: dated tags, then moving tags, build records; on Harbor also the
project, a label and a scan. The pipeline's publish stage runs it after every build job."""

from __future__ import annotations

import argparse
import datetime as dt
import os
from pathlib import Path
from typing import Any

from hepbuild import output
from hepbuild.cells import expand_matrix, select_cells
from hepbuild.commands._args import utc_time
from hepbuild.config.load import load_config
from hepbuild.config.model import Config
from hepbuild.errors import UsageError
from hepbuild.registry.harbor import SEVERITY_RANK
from hepbuild.release.publish import (
    BuildInputs,
    HarborSteps,
    Provenance,
    Published,
    complete_images,
    harbor_steps,
    inputs_from_registry,
    load_build_inputs,
    pair_cells,
    publish_all,
    recipe_commit,
)
from hepbuild.release.records import BUILD_RESULTS, RECORDS_DIR
from hepbuild.release.store import ManifestStore, open_store
from hepbuild.release.targets import current_user
from hepbuild.release.versions import PublishBlocked

COLUMNS = ("image", "dated", "moving", "digest", "platforms")


def register(sub: Any) -> None:
    parser = sub.add_parser("publish", help="tag built images as a release and record them")
    parser.add_argument("cells", nargs="*", metavar="CELL",
                        help="cell ids or globs to publish from the registry, when there is no "
                             "results file")
    parser.add_argument("--results", type=Path, default=BUILD_RESULTS,
                        help=f"build results to publish (default: {BUILD_RESULTS})")
    parser.add_argument("--project-only", action="store_true",
                        help="Harbor: only make sure the project exists (run before the first "
                             "push of a pipeline)")
    parser.add_argument("--no-harbor", dest="harbor", action="store_false",
                        help="skip Harbor's project, label and scan steps")
    parser.add_argument("--max-severity", default=None, metavar="LEVEL",
                        choices=[s.capitalize() for s in SEVERITY_RANK],
                        help="Harbor: wait for the scans and publish nothing with findings "
                             "worse than LEVEL (None, Low, Medium, High, Critical)")
    parser.add_argument("--scan-timeout", type=float, default=600.0, metavar="SECONDS",
                        help="Harbor: how long to wait for a scan with --max-severity")
    parser.add_argument("--time", type=utc_time, default=None, metavar="ISO8601",
                        help="time stamp of the dated tags, e.g. $CI_PIPELINE_CREATED_AT "
                             "(default: now)")
    parser.add_argument("--profile", default=None, help="profile in matrix.yaml (its registry)")
    parser.add_argument("--json", action="store_true", help="print the releases as JSON")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    config = load_config(Path.cwd(), profile=args.profile, env=os.environ)
    if args.project_only:
        return _ensure_project(args, config)
    store = open_store(config.profile.registry, os.environ)
    cells = expand_matrix(config).cells
    inputs = complete_images(store, config, cells, _inputs(args, config, store))
    when = args.time or dt.datetime.now(dt.timezone.utc)
    provenance = Provenance(current_user(os.environ), recipe_commit(config.root), when)
    harbor = _harbor(args, config) if args.harbor else None
    published = publish_all(store, config, pair_cells(cells, inputs), inputs, provenance,
                            Path.cwd() / RECORDS_DIR, harbor)
    _show(args, published)
    if published.blocked:
        raise PublishBlocked("; ".join(published.blocked),
                             "the moving tags of these images stay where they were")
    return 0


def _inputs(args: argparse.Namespace, config: Config, store: ManifestStore) -> BuildInputs:
    if args.cells:
        chosen = select_cells(expand_matrix(config).cells, args.cells, named_by="CELL argument")
        return inputs_from_registry(store, config, chosen)
    if args.results.exists():
        return load_build_inputs(args.results)
    raise UsageError(f"no build results at {args.results} and no cells named",
                     "run hepbuild build first, or name the cells: hepbuild publish 'hep/*'")


def _harbor(args: argparse.Namespace, config: Config) -> HarborSteps | None:
    return harbor_steps(config, os.environ, max_severity=args.max_severity,
                        scan_timeout=args.scan_timeout)


def _ensure_project(args: argparse.Namespace, config: Config) -> int:
    registry = config.profile.registry
    steps = _harbor(args, config)
    if steps is None or not registry.project:
        raise UsageError(f"profile {config.profile.name!r} has no Harbor project",
                         "--project-only needs a registry with kind: harbor and project:")
    created = steps.client.ensure_project(registry.project, public=registry.public)
    state = {"project": registry.project, "created": created, "public": registry.public}
    if args.json:
        output.emit_json(state)
    else:
        output.info(f"Harbor project {registry.project} "
                    f"{'created' if created else 'exists already'}")
    return 0


def _show(args: argparse.Namespace, published: Published) -> None:
    if args.json:
        output.emit_json(published)
        return
    rows = [{"image": r.image_key, "dated": r.dated_tag, "moving": ", ".join(r.moving_tags),
             "digest": output.short_digest(r.digest), "platforms": ", ".join(r.platforms)}
            for r in published.releases]
    output.print_table(rows, COLUMNS)
    for message in published.blocked:
        output.warn(message)
