"""End to end: plan -> child pipeline run by gitlab-ci-local with real builds -> plan again.

A tiny busybox project (one arch, a parent and a child recipe) is planned, its generated
child pipeline runs through gitlab-ci-local's shell executor with the real `hepbuild build
--push` and `hepbuild ci assemble`, and a second plan finds every cell's content key in the
registry, so it plans no build at all.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from pathlib import Path

import git
import pytest
import yaml

from hepbuild.registry.server import LocalRegistry
from tests.integration.registry_fixtures import registry_http  # noqa: F401
from tests.integration.test_ci_gitlab import gitlab_ci_local
from tests.unit.test_ci_git import commit_all

pytestmark = [pytest.mark.gitlab, pytest.mark.buildah, pytest.mark.registry,
              pytest.mark.xdist_group("ci-build")]

MATRIX = """\
version: 1
arches: [x86_64]
default_profile: local
bases:
  bb:
    family: apt
    arches: [x86_64]
    images: {{x86_64: "{registry}/{group}-bases/bb:x86_64"}}
    bootstrap: {{method: busybox}}
profiles:
  local:
    registry: {{name: local, url: "{registry}", insecure: true}}
    bootstrap: true
"""

RECIPES = {
    "parent": 'name: parent\nversion: "1.0"\nsteps: ["uname -m > /built-arch"]\n'
              "test: test -s /built-arch\noutputs: [oci]\n",
    "child": 'name: child\nversion: "1.0"\ndepends_on: {group}/parent\n'
             'steps: ["echo child > /child"]\ntest: test -f /child\noutputs: [oci]\n',
}


def hepbuild(root: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    result = subprocess.run([sys.executable, "-m", "hepbuild", *args], cwd=root, env=env,
                            capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    return result


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory,
            registry_http: LocalRegistry) -> tuple[Path, str]:  # noqa: F811
    group = f"ci{uuid.uuid4().hex[:8]}"  # unique names in the shared buildah store
    root = tmp_path_factory.mktemp("ci-build") / "project"
    root.mkdir()
    (root / "matrix.yaml").write_text(MATRIX.format(registry=registry_http.url, group=group))
    for name, text in RECIPES.items():
        directory = root / "recipes" / group / name
        directory.mkdir(parents=True)
        (directory / "recipe.yaml").write_text(text.format(group=group))
    repo = git.Repo.init(root, initial_branch="main")
    with repo.config_writer() as cfg:
        cfg.set_value("user", "name", "hepbuild tests").set_value("user", "email", "t@example.org")
    commit_all(repo, "tiny project")
    hepbuild(root, "bases", "--json")
    return root, group


def test_child_pipeline_builds_then_the_next_plan_skips_everything(
    project: tuple[Path, str],
) -> None:
    root, group = project
    first = json.loads(hepbuild(root, "ci", "plan", "--all", "--publish", "--json",
                                "--output", "child.yml", "--plan-file", "plan.json").stdout)
    cells = [f"{group}/parent-bb-x86_64", f"{group}/child-bb-x86_64"]
    images = [f"{group}/parent-bb", f"{group}/child-bb"]
    assert [c["cell"] for c in first["cells"]] == cells
    assert {c["action"] for c in first["cells"]} == {"build"}

    # The trigger job hands the parent pipeline's creation time down as HEPBUILD_RELEASE_TIME.
    created = "2026-12-04T03:00:00Z"
    ran = gitlab_ci_local(root, "--file", "child.yml", "--shell-executor-no-image",
                          "--no-json-schema-validation",
                          "--variable", f"HEPBUILD_RELEASE_TIME={created}", *cells, *images)
    failed = [line for line in ran.stdout.splitlines() if "FAIL" in line or "rror" in line]
    assert ran.returncode == 0, "\n".join([*failed, ran.stderr[-2000:], ran.stdout[-3000:]])
    for job in [*cells, *images]:
        assert f"PASS  {job}" in ran.stdout
    junit = next((root / ".gitlab-ci-local" / "artifacts").rglob("junit.xml"))
    assert 'failures="0"' in junit.read_text()

    # What the parent's publish stage runs next, with the image keys the plan names.
    named = hepbuild(root, "ci", "images", "plan.json").stdout.split()
    assert named == sorted(images)
    published = json.loads(hepbuild(root, "publish", "--time", created, *named,
                                    "--json").stdout)
    assert sorted(r["image_key"] for r in published["releases"]) == sorted(images)
    # The image jobs wrote the dated tags; publish found those very lists and moved the
    # moving tags to them.
    stamps = {r["dated_tag"].rsplit("-", 1)[1] for r in published["releases"]}
    assert stamps == {"20261204T030000Z"}

    again = json.loads(hepbuild(root, "ci", "plan", "--all", "--json",
                                "--output", "again.yml").stdout)
    assert [(c["cell"], c["action"]) for c in again["cells"]] == [(c, "skip") for c in cells]
    child = yaml.safe_load((root / "again.yml").read_text())
    assert [k for k in child if k != "stages"] == ["nothing-to-build"]
