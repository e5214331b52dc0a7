"""The planner on a throwaway git repository: real loading, expansion, rendering and git.

The only seam is the registry lookup (a dict of ref -> content key); the registry itself is
exercised in tests/integration/test_ci_registry.py.
"""

from __future__ import annotations

import shutil
from collections.abc import Mapping
from pathlib import Path

import git
import pytest
import yaml

from hepbuild import naming
from hepbuild.ci import pipeline
from hepbuild.ci.plan import Plan, PlanRequest, make_plan
from hepbuild.ci.project import Snapshot, load_snapshot
from hepbuild.cli import main

REPO = Path(__file__).resolve().parents[2]
DIGEST = "@sha256:" + "{}" * 64

MATRIX = f"""\
version: 1
arches: [x86_64, arm64]
default_profile: test
bases:
  deb12:
    family: apt
    arches: [x86_64, arm64]
    images:
      x86_64: example.org/debian:12{DIGEST.format(*"1" * 64)}
      arm64: example.org/debian:12{DIGEST.format(*"2" * 64)}
  el9:
    family: yum
    arches: [x86_64]
    images:
      x86_64: example.org/alma:9{DIGEST.format(*"3" * 64)}
profiles:
  test:
    registry: {{name: test, url: "REGISTRY", insecure: true}}
runners:
  x86_64: {{tags: [x86_64], native: true}}
  arm64: {{tags: [arm64], native: true}}
"""

RECIPES = {
    "site/base/recipe.yaml": 'name: base\nversion: "1.0"\npackages: {common: [bash]}\n',
    "site/base/files/motd": "welcome\n",
    "site/child/recipe.yaml": 'name: child\nversion: "1.0"\ndepends_on: site/base\n'
                              'steps: ["true"]\n',
    "exp/tool/recipe.yaml": 'name: tool\nversion: "2.0"\nbases: [deb12]\nsteps: ["echo tool"]\n',
    "exp/plain/recipe.yaml": 'name: plain\nversion: "0.1"\ndockerfile: Dockerfile\n'
                             "bases: [deb12]\n",
    "exp/plain/Dockerfile": "FROM example.org/debian:12\nRUN echo plain\n",
}

ALL_CELLS = sorted([
    "exp/plain-deb12-arm64", "exp/plain-deb12-x86_64", "exp/tool-deb12-arm64",
    "exp/tool-deb12-x86_64", "site/base-deb12-arm64", "site/base-deb12-x86_64",
    "site/base-el9-x86_64", "site/child-deb12-arm64", "site/child-deb12-x86_64",
    "site/child-el9-x86_64",
])


def write_project(root: Path, registry: str = "127.0.0.1:5999") -> git.Repo:
    """A small project (4 recipes, 2 bases, 2 arches) committed as the first commit."""
    root.mkdir(parents=True, exist_ok=True)
    (root / "matrix.yaml").write_text(MATRIX.replace("REGISTRY", registry))
    for name, text in RECIPES.items():
        path = root / "recipes" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    shutil.copytree(REPO / "templates", root / "templates")
    repo = git.Repo.init(root, initial_branch="main")
    with repo.config_writer() as cfg:
        cfg.set_value("user", "name", "hepbuild tests").set_value("user", "email", "t@example.org")
    commit_all(repo, "initial")
    return repo


def commit_all(repo: git.Repo, message: str) -> str:
    repo.git.add(A=True)
    repo.index.commit(message)
    return repo.head.commit.hexsha


def edit(repo: git.Repo, path: str, old: str, new: str) -> str:
    """Change one file and commit it; returns the commit before the change."""
    before = repo.head.commit.hexsha
    file = Path(repo.working_tree_dir) / path
    text = file.read_text()
    assert old in text, f"{old!r} not in {path}"
    file.write_text(text.replace(old, new))
    commit_all(repo, f"edit {path}")
    return before


class FakeRegistry:
    """Ref -> content key, counting lookups (the seam the brief allows)."""

    def __init__(self, keys: Mapping[str, str] | None = None) -> None:
        self.keys = dict(keys or {})
        self.asked: list[str] = []

    def __call__(self, ref: str) -> str | None:
        self.asked.append(ref)
        return self.keys.get(ref)


def plan_for(
    root: Path, env: Mapping[str, str], lookup: FakeRegistry | None = None, **options: bool
) -> tuple[Plan, Snapshot]:
    snapshot = load_snapshot(root, None, env)
    request = PlanRequest(root, env, **options)

    def load(path: Path) -> Snapshot:
        return load_snapshot(path, None, env)

    return make_plan(request, snapshot, load, lookup or FakeRegistry()), snapshot


def built(plan: Plan) -> list[str]:
    return sorted(c.cell_id for c in plan.builds)


@pytest.fixture
def project(tmp_path: Path) -> git.Repo:
    return write_project(tmp_path / "project")


def root_of(repo: git.Repo) -> Path:
    return Path(str(repo.working_tree_dir))


def test_no_change_plans_nothing_and_writes_the_noop_job(project: git.Repo) -> None:
    before = project.head.commit.hexsha
    (root_of(project) / "README.md").write_text("docs only\n")
    commit_all(project, "docs")
    plan, snap = plan_for(root_of(project), {"CI_COMMIT_BEFORE_SHA": before})
    assert plan.changed == ("README.md",)
    assert plan.cells == ()
    doc = pipeline.child_pipeline(plan, snap, pipeline.PipelineOptions(True, "test"))
    assert [k for k in doc if k not in ("stages", "variables")] == [pipeline.NOOP_JOB]


def test_recipe_change_plans_its_cells_and_its_dependents(project: git.Repo) -> None:
    before = edit(project, "recipes/site/base/files/motd", "welcome", "hello")
    plan, _ = plan_for(root_of(project), {"CI_COMMIT_BEFORE_SHA": before})
    assert built(plan) == [
        "site/base-deb12-arm64", "site/base-deb12-x86_64", "site/base-el9-x86_64",
        "site/child-deb12-arm64", "site/child-deb12-x86_64", "site/child-el9-x86_64"]
    reasons = {c.cell_id: c.reason for c in plan.cells}
    assert reasons["site/base-el9-x86_64"] == (
        "recipe site/base changed (recipes/site/base/files/motd)")
    assert reasons["site/child-el9-x86_64"] == "parent site/base-el9-x86_64 is planned"
    parents = {c.cell_id: c.parent for c in plan.cells}
    assert parents["site/child-deb12-arm64"] == "site/base-deb12-arm64"


def test_template_change_plans_every_cell_that_renders_it(project: git.Repo) -> None:
    yum = root_of(project) / "templates/partials/yum.j2"
    yum.write_text(yum.read_text() + "{# a comment changes the file, not the output #}\n")
    before = project.head.commit.hexsha
    commit_all(project, "template")
    plan, _ = plan_for(root_of(project), {"CI_COMMIT_BEFORE_SHA": before})
    # Only the yum-family (el9) cells render the yum partial; the Dockerfile recipe none.
    assert built(plan) == ["site/base-el9-x86_64", "site/child-el9-x86_64"]
    assert plan.cells[0].reason == "template templates/partials/yum.j2 changed"


def test_a_shared_template_plans_every_templated_cell(project: git.Repo) -> None:
    before = edit(project, "templates/Dockerfile.j2", "\n", "\n{# planner test #}\n")
    plan, _ = plan_for(root_of(project), {"CI_COMMIT_BEFORE_SHA": before})
    assert built(plan) == [c for c in ALL_CELLS if not c.startswith("exp/plain")]


def test_base_change_in_matrix_plans_that_base_only(project: git.Repo) -> None:
    before = edit(project, "matrix.yaml", "3" * 64, "4" * 64)
    plan, _ = plan_for(root_of(project), {"CI_COMMIT_BEFORE_SHA": before})
    assert built(plan) == ["site/base-el9-x86_64", "site/child-el9-x86_64"]
    assert plan.cells[0].reason == "base el9 image for x86_64 changed in matrix.yaml"


def test_custom_template_directory(project: git.Repo) -> None:
    root = root_of(project)
    (root / "templates").rename(root / "tpl")
    matrix = root / "matrix.yaml"
    matrix.write_text(matrix.read_text().replace("version: 1\n", "version: 1\ntemplates: tpl\n"))
    commit_all(project, "own template directory")

    before = edit(project, "matrix.yaml", "3" * 64, "6" * 64)
    plan, _ = plan_for(root, {"CI_COMMIT_BEFORE_SHA": before})
    assert built(plan) == ["site/base-el9-x86_64", "site/child-el9-x86_64"]

    apt = root / "tpl/partials/apt.j2"
    apt.write_text(apt.read_text() + "{# changed #}\n")
    before = project.head.commit.hexsha
    commit_all(project, "apt partial")
    plan, _ = plan_for(root, {"CI_COMMIT_BEFORE_SHA": before})
    assert built(plan) == ["exp/tool-deb12-arm64", "exp/tool-deb12-x86_64",
                           "site/base-deb12-arm64", "site/base-deb12-x86_64",
                           "site/child-deb12-arm64", "site/child-deb12-x86_64"]
    assert plan.cells[0].reason == "template tpl/partials/apt.j2 changed"


def test_added_arch_plans_the_new_cells_only(project: git.Repo) -> None:
    old = "    arches: [x86_64]\n    images:\n      x86_64: example.org/alma:9"
    new = ("    arches: [x86_64, arm64]\n    images:\n"
           f"      arm64: example.org/alma:9{DIGEST.format(*'5' * 64)}\n"
           "      x86_64: example.org/alma:9")
    before = edit(project, "matrix.yaml", old, new)
    plan, _ = plan_for(root_of(project), {"CI_COMMIT_BEFORE_SHA": before})
    assert built(plan) == ["site/base-el9-arm64", "site/child-el9-arm64"]


def test_hepbuild_code_change_plans_every_cell(project: git.Repo) -> None:
    before = project.head.commit.hexsha
    (root_of(project) / "hepbuild").mkdir()
    (root_of(project) / "hepbuild" / "render.py").write_text("# changed\n")
    commit_all(project, "tool change")
    plan, _ = plan_for(root_of(project), {"CI_MERGE_REQUEST_DIFF_BASE_SHA": before})
    assert built(plan) == ALL_CELLS
    assert plan.why.startswith("CI_MERGE_REQUEST_DIFF_BASE_SHA=")


def registry_holding_everything(root: Path) -> FakeRegistry:
    """What the registry holds after every cell was built and pushed once."""
    snap = load_snapshot(root, None, {})
    registry = snap.config.profile.registry
    return FakeRegistry({naming.arch_ref(registry, c): snap.content_key(c) for c in snap.cells})


def test_second_run_skips_every_cell_by_content_key(project: git.Repo) -> None:
    first, snap = plan_for(root_of(project), {}, plan_all=True)
    assert built(first) == ALL_CELLS
    registry = registry_holding_everything(root_of(project))

    again, snap = plan_for(root_of(project), {}, registry, plan_all=True)
    assert again.builds == ()
    assert {c.action for c in again.cells} == {"skip"}
    assert sorted(registry.asked) == sorted(c.ref for c in first.cells)
    doc = pipeline.child_pipeline(again, snap, pipeline.PipelineOptions(True, "test"))
    assert [k for k in doc if k not in ("stages", "variables")] == [pipeline.NOOP_JOB]
    assert "10 cell(s) up to date" in doc[pipeline.NOOP_JOB]["script"][0]


def test_force_builds_despite_matching_keys(project: git.Repo) -> None:
    registry = registry_holding_everything(root_of(project))
    forced, _ = plan_for(root_of(project), {}, registry, plan_all=True, force=True)
    assert built(forced) == ALL_CELLS
    assert registry.asked == []


def test_child_of_a_rebuilt_parent_is_built_even_if_its_key_matches(project: git.Repo) -> None:
    registry = registry_holding_everything(root_of(project))
    stale = "site/base-deb12-x86_64"
    del registry.keys["127.0.0.1:5999/site/base:1.0-" + stale.split("-", 1)[1]]
    plan, _ = plan_for(root_of(project), {}, registry, plan_all=True)
    assert built(plan) == [stale, "site/child-deb12-x86_64"]


def test_schedule_plans_every_cell(project: git.Repo) -> None:
    plan, _ = plan_for(root_of(project), {"CI_PIPELINE_SOURCE": "schedule"})
    assert built(plan) == ALL_CELLS
    assert plan.diff_base is None


def test_new_branch_falls_back_to_the_merge_base(project: git.Repo) -> None:
    main_head = project.head.commit.hexsha
    project.git.checkout("-b", "feature")
    edit(project, "recipes/exp/tool/recipe.yaml", "echo tool", "echo tool2")
    env = {"CI_COMMIT_BEFORE_SHA": "0" * 40, "CI_DEFAULT_BRANCH": "main"}
    plan, _ = plan_for(root_of(project), env)
    assert plan.diff_base == main_head
    assert built(plan) == ["exp/tool-deb12-arm64", "exp/tool-deb12-x86_64"]


def test_missing_merge_request_base_warns_and_plans_every_cell(
    project: git.Repo, capsys: pytest.CaptureFixture[str]
) -> None:
    plan, _ = plan_for(root_of(project), {"CI_MERGE_REQUEST_DIFF_BASE_SHA": "ab" * 20})
    assert built(plan) == ALL_CELLS
    assert "CI_MERGE_REQUEST_DIFF_BASE_SHA=abababababab is not in this clone" in (
        capsys.readouterr().err)


def test_uncommitted_edits_count_with_worktree(project: git.Repo) -> None:
    (root_of(project) / "recipes/exp/plain/Dockerfile").write_text("FROM example.org/x\n")
    plan, _ = plan_for(root_of(project), {}, since="HEAD", include_worktree=True)
    assert built(plan) == ["exp/plain-deb12-arm64", "exp/plain-deb12-x86_64"]


def test_cli_writes_child_pipeline_and_json(
    project: git.Repo, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    before = edit(project, "recipes/exp/tool/recipe.yaml", "echo tool", "echo tool2")
    monkeypatch.chdir(root_of(project))
    code = main(["ci", "plan", "--since", before, "--output", "out/child.yml", "--json",
                 "--publish", "--plan-file", "out/plan.json"])
    assert code == 0
    document = yaml.safe_load(capsys.readouterr().out)
    assert [c["cell"] for c in document["cells"]] == ["exp/tool-deb12-x86_64",
                                                      "exp/tool-deb12-arm64"]
    assert document["cells"][0]["reason"] == (
        "recipe exp/tool changed (recipes/exp/tool/recipe.yaml)")
    child = yaml.safe_load((root_of(project) / "out/child.yml").read_text())
    assert sorted(child) == ["exp/tool-deb12", "exp/tool-deb12-arm64", "exp/tool-deb12-x86_64",
                             "stages", "variables"]
    assert (root_of(project) / "out/plan.json").is_file()


def test_cli_outside_git_is_a_clear_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    root = tmp_path / "nogit"
    write_project(root)
    shutil.rmtree(root / ".git")
    monkeypatch.chdir(root)
    assert main(["ci", "plan", "--since", "main", "--output", "c.yml"]) == 2
    err = capsys.readouterr().err
    assert "is not inside a git repository" in err and "Traceback" not in err
    assert not (root / "c.yml").exists()


def test_cli_unknown_since_ref_is_a_clear_error(
    project: git.Repo, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(root_of(project))
    assert main(["ci", "plan", "--since", "no-such-branch"]) == 2
    err = capsys.readouterr().err
    assert "--since: 'no-such-branch' is not a commit" in err and "Traceback" not in err


def test_ci_images_names_whole_images_of_built_cells(
    project: git.Repo, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    before = edit(project, "recipes/site/child/recipe.yaml", '["true"]', '["true", "true"]')
    monkeypatch.chdir(root_of(project))
    assert main(["ci", "plan", "--since", before, "--plan-file", "plan.json"]) == 0
    capsys.readouterr()
    assert main(["ci", "images", "plan.json"]) == 0
    assert capsys.readouterr().out.splitlines() == ["site/child-deb12", "site/child-el9"]


@pytest.mark.parametrize(("text", "message"), [
    (None, "no plan at"),
    ("{not json", "plan.json:1: not a JSON plan"),
    ('{"cells": 3}', "has no list of cells"),
])
def test_ci_images_rejects_a_bad_plan_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
    text: str | None, message: str,
) -> None:
    monkeypatch.chdir(tmp_path)
    if text is not None:
        (tmp_path / "plan.json").write_text(text)
    assert main(["ci", "images", "plan.json"]) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err
