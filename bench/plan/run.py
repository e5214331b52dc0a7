"""Time `hepbuild ci plan` for 200 synthetic recipes with one recipe changed (target: < 2 s).

    .venv/bin/python bench/plan/run.py [--recipes 200] [--repeat 5] [--json]

The recipes are generated into a temporary git repository (3 bases, 5 cells each, every
tenth recipe with two children), one parent recipe is edited and committed, and the plan is
made the way the CLI makes it: load + expand the project, diff against the previous commit,
map files to cells, add dependents, compute the planned cells' content keys, check them
against the registry and write the child pipeline.

The headline figure is the real command in a fresh process (its registry, 127.0.0.1:9, refuses
connections at once, so every planned cell is built); the in-process runs use an empty
registry lookup and show the planner's own time without interpreter start-up.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import git

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

from hepbuild.ci import pipeline  # noqa: E402
from hepbuild.ci.plan import PlanRequest, make_plan  # noqa: E402
from hepbuild.ci.project import Snapshot, load_snapshot  # noqa: E402

TARGET_SECONDS = 2.0


def pinned(name: str, fill: str) -> str:
    return f"example.org/{name}@sha256:{fill * 64}"


MATRIX = f"""\
version: 1
arches: [x86_64, arm64]
default_profile: bench
bases:
  deb12:
    family: apt
    arches: [x86_64, arm64]
    images: {{x86_64: "{pinned('debian', '1')}", arm64: "{pinned('debian', '2')}"}}
  el9:
    family: yum
    arches: [x86_64, arm64]
    images: {{x86_64: "{pinned('alma', '3')}", arm64: "{pinned('alma', '4')}"}}
  sl7:
    family: yum
    arches: [x86_64]
    images: {{x86_64: "{pinned('sl', '5')}"}}
profiles:
  bench:
    registry: {{name: bench, url: "127.0.0.1:9", insecure: true}}
runners:
  x86_64: {{tags: [x86_64], native: true}}
  arm64: {{tags: [arm64], native: true}}
"""


def recipe_text(index: int) -> str:
    lines = [f"name: r{index:03d}", 'version: "1.0"', "packages: {common: [bash, procps]}",
             f'steps: ["echo recipe {index}"]']
    if index % 10 in (1, 2):  # two children of every tenth recipe
        lines.append(f"depends_on: bench/r{index - index % 10:03d}")
    return "\n".join(lines) + "\n"


def make_repository(root: Path, recipes: int) -> tuple[git.Repo, str]:
    """The project, committed twice: everything, then one edited parent recipe."""
    (root / "matrix.yaml").write_text(MATRIX)
    shutil.copytree(REPO / "templates", root / "templates")
    for index in range(recipes):
        directory = root / "recipes" / "bench" / f"r{index:03d}"
        directory.mkdir(parents=True)
        (directory / "recipe.yaml").write_text(recipe_text(index))
    repo = git.Repo.init(root, initial_branch="main")
    with repo.config_writer() as cfg:
        cfg.set_value("user", "name", "bench").set_value("user", "email", "bench@example.org")
    repo.git.add(A=True)
    repo.index.commit("synthetic recipes")
    before = repo.head.commit.hexsha
    changed = root / "recipes" / "bench" / "r050" / "recipe.yaml"
    changed.write_text(changed.read_text().replace("echo recipe 50", "echo recipe 50 again"))
    repo.git.add(A=True)
    repo.index.commit("change one recipe")
    return repo, before


def plan_once(root: Path, before: str, out: Path) -> tuple[float, int, int, int]:
    env = {"CI_COMMIT_BEFORE_SHA": before}
    started = time.perf_counter()
    snapshot = load_snapshot(root, None, env)

    def load(path: Path) -> Snapshot:
        return load_snapshot(path, None, env)

    plan = make_plan(PlanRequest(root, env), snapshot, load, lambda ref: None)
    doc = pipeline.child_pipeline(plan, snapshot, pipeline.PipelineOptions(True, "bench"))
    pipeline.write_pipeline(doc, out)
    return time.perf_counter() - started, len(snapshot.cells), len(plan.builds), len(doc)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--recipes", type=int, default=200)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="hepbuild-bench-plan-") as tmp:
        root = Path(tmp) / "project"
        root.mkdir()
        _, before = make_repository(root, args.recipes)
        cli_seconds = time_cli(root, before, Path(tmp) / "cli-child.yml")
        runs = [plan_once(root, before, Path(tmp) / "child.yml") for _ in range(args.repeat)]

    seconds = [r[0] for r in runs]
    _, cells, built, entries = runs[-1]
    result = {
        "recipes": args.recipes, "cells": cells, "planned_builds": built,
        "pipeline_entries": entries, "repeat": args.repeat,
        "cli_seconds": round(cli_seconds, 3),
        "seconds_first": round(seconds[0], 3),
        "seconds_median": round(statistics.median(seconds), 3),
        "seconds_min": round(min(seconds), 3), "target_seconds": TARGET_SECONDS,
        "within_target": cli_seconds < TARGET_SECONDS,
    }
    if args.json:
        print(json.dumps(result, indent=2, sort_keys=True))
        return 0
    verdict = "met" if result["within_target"] else "MISSED"
    print(f"{args.recipes} recipes, {cells} cells, 1 recipe changed -> {built} cells to build")
    print(f"hepbuild ci plan (new process, whole command): {cli_seconds:.3f} s "
          f"(target < {TARGET_SECONDS:.0f} s: {verdict})")
    print(f"in-process plan: first {seconds[0]:.3f} s, median {result['seconds_median']:.3f} s, "
          f"min {result['seconds_min']:.3f} s over {args.repeat} runs")
    return 0


def time_cli(root: Path, before: str, out: Path) -> float:
    """The command a pipeline runs, in a fresh interpreter (imports and all)."""
    argv = [sys.executable, "-m", "hepbuild", "ci", "plan", "--output", str(out)]
    env = {**os.environ, "CI_COMMIT_BEFORE_SHA": before, "PYTHONPATH": str(REPO)}
    started = time.perf_counter()
    subprocess.run(argv, cwd=root, env=env, check=True, capture_output=True, timeout=300)
    return time.perf_counter() - started


if __name__ == "__main__":
    sys.exit(main())
