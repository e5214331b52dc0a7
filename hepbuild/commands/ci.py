"""``hepbuild ci plan``: decide what a pipeline builds and write GitLab's child pipeline."""

from __future__ import annotations

import argparse
import datetime as dt
import io
import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from hepbuild.ci import assemble, keys, pipeline
from hepbuild.ci.plan import Plan, PlanRequest, SnapshotLoader, make_plan
from hepbuild.ci.project import Snapshot, load_snapshot
from hepbuild.commands._args import utc_time
from hepbuild.errors import UsageError
from hepbuild.files import atomic_write
from hepbuild.output import emit_json, print_table, section, short_digest

DEFAULT_OUTPUT = "build/child-pipeline.yml"
SUMMARY_COLUMNS = ("cell", "action", "reason", "ref", "key", "seconds")


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser("ci", help="plan GitLab CI pipelines (changed cells -> child pipeline)")
    ci_sub = parser.add_subparsers(dest="ci_command", metavar="CI_COMMAND", required=True)
    plan = ci_sub.add_parser(
        "plan", help="find the cells changed since the diff base and write the child pipeline"
    )
    plan.add_argument("--since", metavar="REF", help="diff against REF (local runs)")
    plan.add_argument(
        "--output", metavar="FILE", default=DEFAULT_OUTPUT,
        help=f"where to write the child pipeline (default: {DEFAULT_OUTPUT})",
    )
    plan.add_argument("--json", action="store_true", help="print the plan as JSON")
    plan.add_argument(
        "--plan-file", metavar="FILE", help="also write the JSON plan here (for the publish job)"
    )
    plan.add_argument("--all", dest="plan_all", action="store_true", help="plan every cell")
    plan.add_argument("--force", action="store_true", help="build even if the content key matches")
    plan.add_argument(
        "--profile", help="matrix profile (default: $HEPBUILD_PROFILE, else the matrix's)"
    )
    plan.add_argument(
        "--publish", action=argparse.BooleanOptionalAction, default=None,
        help="push images and lists (default: only on the default branch and schedules)",
    )
    plan.add_argument(
        "--worktree", action="store_true", help="count uncommitted changes too (local runs)"
    )
    plan.add_argument("--timeout", default="3h", help="GitLab timeout of each job (default: 3h)")
    plan.add_argument(
        "--setup", action="append", default=[], metavar="LINE",
        help="a before_script line for every child job, e.g. installing hepbuild (repeatable)",
    )
    plan.set_defaults(func=run)

    assemble = ci_sub.add_parser(
        "assemble",
        help="write an image's dated multi-arch list from its per-arch tags in the registry",
    )
    assemble.add_argument("image", metavar="IMAGE", help="image key, e.g. base/login-node-debian12")
    assemble.add_argument("--profile", help="matrix profile (default: $HEPBUILD_PROFILE)")
    assemble.add_argument("--json", action="store_true", help="print the list as JSON")
    assemble.add_argument(
        "--time", type=utc_time, default=None, metavar="ISO8601",
        help="time stamp of the dated tag; use the pipeline's $CI_PIPELINE_CREATED_AT so that "
        "the publish stage finds the same tag (default: now)",
    )
    assemble.set_defaults(func=run_assemble)

    images = ci_sub.add_parser(
        "images", help="print the image keys a plan builds, one a line (for the publish job)"
    )
    images.add_argument("plan_file", metavar="PLAN", type=Path, help="JSON from --plan-file")
    images.set_defaults(func=run_images)


def run(args: argparse.Namespace) -> int:
    env = dict(os.environ)
    root = Path.cwd()
    if args.since and args.plan_all:
        raise UsageError("--since and --all contradict each other", "give one of them")

    with section("ci_load", "load the project"):
        snapshot = load_snapshot(root, args.profile, env)
    request = PlanRequest(root, env, args.since, args.plan_all, args.force, args.worktree)
    with keys.RegistryKeyLookup(snapshot.config.profile.registry, env) as lookup:
        plan = make_plan(request, snapshot, _revision_loader(args.profile, env), lookup)

    publish = wants_publish(env) if args.publish is None else args.publish
    options = pipeline.PipelineOptions(
        publish, snapshot.config.profile.name, timeout=args.timeout, setup=tuple(args.setup)
    )
    output = Path(args.output)
    with section("ci_write", f"write {output}"):
        pipeline.write_pipeline(pipeline.child_pipeline(plan, snapshot, options), output)
    document = plan_document(plan, publish, output)
    if args.plan_file:
        write_json_file(document, Path(args.plan_file))
    _report(plan, document, as_json=args.json)
    return 0


def _revision_loader(profile: str | None, env: Mapping[str, str]) -> SnapshotLoader:
    def load(root: Path) -> Snapshot:
        return load_snapshot(root, profile, env)

    return load


def wants_publish(env: Mapping[str, str]) -> bool:
    """Publish on the default branch and on schedules; never from a merge request."""
    if env.get("CI_MERGE_REQUEST_IID") or env.get("CI_PIPELINE_SOURCE") == "merge_request_event":
        return False
    if env.get("CI_PIPELINE_SOURCE") == "schedule":
        return True
    default = env.get("CI_DEFAULT_BRANCH")
    return bool(default) and env.get("CI_COMMIT_BRANCH") == default


def plan_document(plan: Plan, publish: bool, output: Path) -> dict[str, Any]:
    return {
        "diff_base": plan.diff_base,
        "why": plan.why,
        "changed": list(plan.changed),
        "publish": publish,
        "output": str(output),
        "steps": {name: round(seconds, 3) for name, seconds in plan.steps.items()},
        "cells": [_cell_row(c) | {"reasons": list(c.reasons)} for c in plan.cells],
        "summary": {"build": len(plan.builds), "skip": len(plan.cells) - len(plan.builds)},
    }


def _cell_row(planned: Any) -> dict[str, Any]:
    return {
        "cell": planned.cell_id,
        "image": planned.image,
        "action": planned.action,
        "reason": planned.reason,
        "ref": planned.ref,
        "parent": planned.parent,
        "content_key": planned.content_key,
        "seconds": round(planned.seconds, 3),
    }


def write_json_file(document: dict[str, Any], path: Path) -> None:
    """Atomically, so the publish job never reads half a plan."""
    text = io.StringIO()
    emit_json(document, text)
    atomic_write(path, text.getvalue())


def _report(plan: Plan, document: dict[str, Any], *, as_json: bool) -> None:
    if as_json:
        emit_json(document)
        return
    publish, output = document["publish"], document["output"]
    print(f"diff: {plan.why}; {len(plan.changed)} changed file(s)")
    if plan.cells:
        rows = [_cell_row(c) | {"key": short_digest(c.content_key)} for c in plan.cells]
        print_table(rows, SUMMARY_COLUMNS)
    builds = len(plan.builds)
    steps = ", ".join(f"{name} {seconds:.2f} s" for name, seconds in plan.steps.items())
    print(f"{builds} to build, {len(plan.cells) - builds} skipped; publish: {publish}; "
          f"child pipeline: {output}; steps: {steps}")


def run_assemble(args: argparse.Namespace) -> int:
    from hepbuild.cells import expand_matrix
    from hepbuild.config.load import load_config
    from hepbuild.release.store import open_store

    env = dict(os.environ)
    config = load_config(Path.cwd(), profile=args.profile, env=env)
    cells = [c for c in expand_matrix(config).cells if c.image_key == args.image]
    if not cells:
        raise UsageError(f"no cell of the matrix belongs to image {args.image!r}",
                         "image keys look like group/name-base; see `hepbuild matrix`")
    when = args.time or dt.datetime.now(dt.timezone.utc)
    store = open_store(config.profile.registry, env)
    with store.client, section(f"assemble_{args.image}", f"assemble {args.image}"):
        result = assemble.assemble_list(store, config, cells, when)
    if args.json:
        emit_json(result)
        return 0
    print_table([{"cell": c, "platform": p} for c, p in zip(result.cells, result.platforms,
                                                             strict=True)], ("cell", "platform"))
    print(f"{result.ref} -> {result.digest}")
    return 0


def run_images(args: argparse.Namespace) -> int:
    for image in built_images(read_plan_file(args.plan_file)):
        print(image)
    return 0


def read_plan_file(path: Path) -> dict[str, Any]:
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise UsageError(
            f"no plan at {path}", "write one with hepbuild ci plan --plan-file"
        ) from None
    except json.JSONDecodeError as exc:
        raise UsageError(f"{path}:{exc.lineno}: not a JSON plan ({exc.msg})",
                         "write it again with hepbuild ci plan --plan-file") from None
    if not isinstance(document, dict) or not isinstance(document.get("cells"), list):
        raise UsageError(f"{path} has no list of cells", "is it a plan from hepbuild ci plan?")
    return document


def built_images(document: dict[str, Any]) -> list[str]:
    """Every image with a cell built: publish names whole images, so lists hold every arch."""
    return sorted({c["image"] for c in document["cells"] if c.get("action") == "build"})
