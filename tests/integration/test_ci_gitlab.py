"""Both pipelines through gitlab-ci-local 4.56.2: listed, rules applied, one child job run.

The child job runs through gitlab-ci-local's shell executor with HEPBUILD_BUILD_CMD pointed
at ``hepbuild render`` (a real command that runs here without buildah), so the job's own
script line, variables and artifact paths are what is exercised.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import git
import pytest

from tests.unit.test_ci_git import commit_all, write_project

# One worker runs them all, so the planned project is made once (run with --dist loadgroup).
pytestmark = [pytest.mark.gitlab, pytest.mark.xdist_group("ci-gitlab")]

REPO = Path(__file__).resolve().parents[2]
GITLAB_CI_LOCAL = REPO / "node_modules" / ".bin" / "gitlab-ci-local"
CELL = "exp/tool-deb12-x86_64"


def gitlab_ci_local(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    if "--list" not in args and shutil.which("rsync") is None:
        pytest.fail("gitlab-ci-local's shell executor copies the project with rsync, which is "
                    "missing: apt-get install rsync", pytrace=False)
    tool = shutil.which("gitlab-ci-local") or str(GITLAB_CI_LOCAL)
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    return subprocess.run([tool, *args], cwd=cwd, env=env, capture_output=True, text=True,
                          timeout=300)


def listed_jobs(result: subprocess.CompletedProcess[str]) -> dict[str, str]:
    """Job name -> stage from ``--list`` (first line of the table is the header)."""
    assert result.returncode == 0, result.stdout + result.stderr
    lines = result.stdout.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("name "))
    return {line.split()[0]: line.split()[1] for line in lines[start + 1:] if line.strip()}


def hepbuild(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "hepbuild", *args], cwd=cwd,
                          capture_output=True, text=True, timeout=300)


@pytest.fixture(scope="module")
def planned_project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("gitlab") / "project"
    write_project(root)
    result = hepbuild(root, "ci", "plan", "--all", "--publish", "--output", "child.yml",
                      "--plan-file", "plan.json")
    assert result.returncode == 0, result.stderr
    return root


def test_child_pipeline_lists_every_job_with_its_stage(planned_project: Path) -> None:
    jobs = listed_jobs(gitlab_ci_local(planned_project, "--file", "child.yml", "--list"))
    plan = json.loads((planned_project / "plan.json").read_text())
    cells = {c["cell"] for c in plan["cells"]}
    images = {c["image"] for c in plan["cells"]}
    assert jobs == {**{c: "build" for c in cells}, **{i: "images" for i in images}}


def test_one_child_job_runs_through_the_shell_executor(planned_project: Path) -> None:
    result = gitlab_ci_local(
        planned_project, "--file", "child.yml", "--shell-executor-no-image",
        "--no-json-schema-validation",  # the --list test above validated this file
        "--variable", "HEPBUILD_BUILD_CMD=hepbuild render",
        "--variable", "HEPBUILD_BUILD_ARGS=--out build/logs/rendered",
        CELL,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"PASS  {CELL}" in result.stdout
    dockerfile = planned_project / "build/logs/rendered" / CELL / "Dockerfile"
    assert f"for cell {CELL};" in dockerfile.read_text()  # the job built the cell it names
    artifacts = planned_project / ".gitlab-ci-local" / "artifacts"
    collected = [p.relative_to(artifacts).as_posix() for p in artifacts.rglob("Dockerfile")]
    assert len(collected) == 1 and collected[0].endswith(f"/build/logs/rendered/{CELL}/Dockerfile")


def test_a_failing_job_fails(planned_project: Path) -> None:
    """So the pass above means something: a bad command makes the job fail."""
    result = gitlab_ci_local(
        planned_project, "--file", "child.yml", "--shell-executor-no-image",
        "--no-json-schema-validation",
        "--variable", "HEPBUILD_BUILD_CMD=hepbuild render --no-such-option", CELL,
    )
    assert result.returncode != 0
    assert f"FAIL  {CELL}" in result.stdout


@pytest.fixture(scope="module")
def project_pipeline(tmp_path_factory: pytest.TempPathFactory) -> git.Repo:
    root = tmp_path_factory.mktemp("parent")
    repo = git.Repo.init(root, initial_branch="main")
    with repo.config_writer() as cfg:
        cfg.set_value("user", "name", "hepbuild tests").set_value("user", "email", "t@example.org")
    shutil.copy(REPO / ".gitlab-ci.yml", root / ".gitlab-ci.yml")
    commit_all(repo, "pipeline")
    return repo


@pytest.mark.parametrize(("variables", "expected"), [
    ((), {"lint": "lint", "plan": "plan", "build": "build", "publish": "publish"}),
    (("CI_PIPELINE_SOURCE=schedule",),
     {"lint": "lint", "plan": "plan", "build": "build", "publish": "publish"}),
    (("CI_PIPELINE_SOURCE=merge_request_event", "CI_MERGE_REQUEST_IID=7"),
     {"lint": "lint", "plan": "plan", "build": "build"}),
], ids=["default-branch", "schedule", "merge-request"])
def test_project_pipeline_jobs_per_pipeline_kind(
    project_pipeline: git.Repo, variables: tuple[str, ...], expected: dict[str, str]
) -> None:
    root = Path(str(project_pipeline.working_tree_dir))
    args = [arg for v in variables for arg in ("--variable", v)]
    assert listed_jobs(gitlab_ci_local(root, "--list", *args)) == expected
