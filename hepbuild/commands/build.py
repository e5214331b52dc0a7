"""``hepbuild build``: render, build, test and push the selected cells."""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
from dataclasses import replace
from pathlib import Path
from typing import Any

from hepbuild import output
from hepbuild.build import pipeline, publish
from hepbuild.build.junit import write_junit
from hepbuild.build.options import add_buildah_options, make_buildah
from hepbuild.build.results import BuiltImage
from hepbuild.commands._args import utc_time
from hepbuild.config.model import Cell, Config
from hepbuild.errors import HepbuildError, UsageError
from hepbuild.files import atomic_write
from hepbuild.release.publish import harbor_steps
from hepbuild.release.records import BUILD_RESULTS, RECORDS_DIR
from hepbuild.release.store import open_store

SUMMARY_COLUMNS = ["cell", "status", "test", "reference", "digest", "size", "time"]


def register(sub: Any) -> None:
    parser = sub.add_parser("build", help="build the selected cells with buildah, test and push")
    parser.add_argument("--select", action="append", default=[], metavar="GLOB",
                        help="cells to build, by cell id, image key or recipe id (repeatable)")
    parser.add_argument("--jobs", "-j", type=int, default=1, metavar="N",
                        help="cells built at the same time (default: 1)")
    parser.add_argument("--push", action=argparse.BooleanOptionalAction, default=True,
                        help="push per-arch images and SIFs, then release each complete image: "
                        "dated tag, moving tags, build records (default: --push)")
    parser.add_argument("--lists", action=argparse.BooleanOptionalAction, default=True,
                        help="with --push, also release the multi-arch lists; CI arch jobs use "
                        "--no-lists and leave that to the image job and publish stage")
    parser.add_argument("--time", type=utc_time, default=None, metavar="ISO8601",
                        help="time stamp of the dated tags (default: now)")
    parser.add_argument("--no-test", dest="test", action="store_false",
                        help="do not run the recipes' test commands in the built images")
    parser.add_argument("--outputs", action=argparse.BooleanOptionalAction, default=True,
                        help="write each cell's outputs (oci, sif, sandbox) into dist/<cell>/")
    add_buildah_options(parser)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from hepbuild.cells import expand_matrix, select_cells
    from hepbuild.config.load import load_config

    if args.jobs < 1:
        raise UsageError(f"--jobs {args.jobs} must be at least 1")
    root = Path.cwd()
    config = load_config(root, profile=args.profile, env=os.environ)
    cells = select_cells(expand_matrix(config).cells, args.select)
    output.info(f"building {len(cells)} cell(s): {', '.join(c.id for c in cells)}")
    buildah = make_buildah(args, config.profile.registry)
    layout = pipeline.Layout(root)

    with output.section("render", f"render {len(cells)} cell(s)"):
        jobs = pipeline.plan_jobs(config, cells, layout, buildah)
    with output.section("build", f"build with --jobs {args.jobs}", collapsed=False):
        images = pipeline.run_jobs(buildah, jobs, layout, max_workers=args.jobs,
                                   run_tests=args.test)
    if args.push:
        with output.section("push", "push per-arch images"):
            images = pipeline.push_images(buildah, config, jobs, images)
    junit = write_junit(images, layout.junit_path)
    outputs: dict[str, list[str]] = {}
    output_errors: list[HepbuildError] = []
    if args.outputs:
        with output.section("outputs", "write oci/sif/sandbox outputs into dist/"):
            outputs, output_errors = pipeline.write_outputs(jobs, images, layout,
                                                            max_workers=args.jobs)
    report = pipeline.BuildReport(images, outputs=outputs, junit=str(junit))
    if args.push:
        report = _release(args, config, cells, report, root)
    _write_results(report, root / BUILD_RESULTS)
    _report(args, report)
    failure = pipeline.first_failure(images)
    if failure is not None:
        raise failure
    if output_errors:
        raise output_errors[0]
    return 0


def _release(args: argparse.Namespace, config: Config, cells: list[Cell],
             report: pipeline.BuildReport, root: Path) -> pipeline.BuildReport:
    """SIFs over ORAS, then (with --lists) dated and moving tags and the build records."""
    env = dict(os.environ)
    if getattr(args, "authfile", None):
        env["REGISTRY_AUTH_FILE"] = str(args.authfile)  # the same login buildah used
    store = open_store(config.profile.registry, env)
    with store.client:
        if any(report.outputs.values()):
            with output.section("push_sif", "push SIF files"):
                publish.push_cell_sifs(store, config, cells, report.outputs)
        if not args.lists:
            return report
        with output.section("release", "release images: dated tag, moving tags, records"):
            published = publish.release_images(
                store, config, report.images, report.outputs, env=env,
                when=args.time or dt.datetime.now(dt.timezone.utc),
                records_dir=root / RECORDS_DIR, harbor=harbor_steps(config, env))
    return replace(report, releases=published.releases, blocked=published.blocked)


def _write_results(report: pipeline.BuildReport, path: Path) -> None:
    """build/results.json, what ``hepbuild publish`` reads; written whole or not at all."""
    atomic_write(path, json.dumps(output.to_jsonable(report), indent=2, sort_keys=True) + "\n")


def _report(args: argparse.Namespace, report: pipeline.BuildReport) -> None:
    if args.json:
        output.emit_json(report)
        return
    output.print_table([_row(i) for i in report.images], SUMMARY_COLUMNS)
    for release in report.releases:
        tags = ", ".join((release.dated_tag, *release.moving_tags))
        print(f"list {release.repository}:{release.moving_tags[0]}@{release.digest}: "
              f"{', '.join(release.platforms)} (tags {tags})")
    for message in report.blocked:
        print(f"not released: {message}")
    for cell_id, files in sorted(report.outputs.items()):
        print(f"outputs of {cell_id}: {', '.join(files)}")
    print(f"test report: {report.junit}")


def _row(image: BuiltImage) -> dict[str, Any]:
    return {
        "cell": image.cell_id, "status": image.status, "test": image.test_status,
        "reference": image.pushed_ref or image.local_ref,
        "digest": output.short_digest(image.digest), "size": output.human_size(image.size),
        "time": image.seconds,
    }
