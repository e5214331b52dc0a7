"""``hepbuild ci plan``: decide what a pipeline builds and write GitLab's child pipeline."""

from __future__ import annotations

import argparse
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from hepbuild.ci import keys, pipeline
from hepbuild.ci.plan import Plan, PlanRequest, SnapshotLoader, make_plan
from hepbuild.ci.project import Snapshot, load_snapshot
from hepbuild.errors import UsageError
from hepbuild.output import emit_json, print_table, section

DEFAULT_OUTPUT = "build/child-pipeline.yml"
SUMMARY_COLUMNS = ("cell", "action", "reason", "ref", "seconds")


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
    plan.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    env = dict(os.environ)
    root = Path.cwd()
    if args.since and args.plan_all:
        raise UsageError("--since and --all contradict each other", "give one of them")

    with section("ci_load", "load the project"):
        snapshot = load_snapshot(root, args.profile, env)
    request = PlanRequest(root, env, args.since, args.plan_all, args.force, args.worktree)
    lookup = keys.lookup_for(snapshot.config.profile.registry)
    plan = make_plan(request, snapshot, _revision_loader(args.profile, env), lookup)

    publish = wants_publish(env) if args.publish is None else args.publish
    options = pipeline.PipelineOptions(publish, snapshot.config.profile.name, timeout=args.timeout)
    output = Path(args.output)
    with section("ci_write", f"write {output}"):
        pipeline.write_pipeline(pipeline.child_pipeline(plan, snapshot, options), output)
    _report(plan, publish, output, as_json=args.json)
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


def _report(plan: Plan, publish: bool, output: Path, *, as_json: bool) -> None:
    if as_json:
        emit_json(plan_document(plan, publish, output))
        return
    print(f"diff: {plan.why}; {len(plan.changed)} changed file(s)")
    if plan.cells:
        print_table([_cell_row(c) for c in plan.cells], SUMMARY_COLUMNS)
    builds = len(plan.builds)
    print(f"{builds} to build, {len(plan.cells) - builds} skipped; publish: {publish}; "
          f"child pipeline: {output}")
