"""The child pipeline's shape, and both pipelines against GitLab's CI JSON schema."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from hepbuild.ci import pipeline
from hepbuild.ci.impact import parent_cell_id
from hepbuild.ci.plan import Plan, PlannedCell
from hepbuild.ci.project import Snapshot
from hepbuild.config.model import Runner
from tests.unit.test_ci_impact import make_base, make_config, make_recipe, snapshot

REPO = Path(__file__).resolve().parents[2]
RUNNERS = {
    "x86_64": Runner("x86_64", ("site", "x86_64"), True),
    "arm64": Runner("arm64", ("site", "arm64"), True),
}


def planned_cells(snap: Snapshot, skipped: tuple[str, ...]) -> Plan:
    """Every cell of the snapshot built unless skipped, each child linked to a built parent."""
    cells = []
    for cell in snap.cells:
        parent = parent_cell_id(cell)
        cells.append(PlannedCell(
            cell.id, cell.image_key, "skip" if cell.id in skipped else "build", ("test",),
            f"r/{cell.id}", parent if parent and parent not in skipped else None, None, 0.0,
        ))
    return Plan("0" * 40, "test", (), tuple(cells))


def child(
    publish: bool = True, runners: dict[str, Runner] | None = None, skipped: tuple[str, ...] = ()
) -> dict:
    snap = snapshot(make_config(runners=RUNNERS if runners is None else runners))
    plan = planned_cells(snap, skipped)
    return pipeline.child_pipeline(plan, snap, pipeline.PipelineOptions(publish, "local"))


def jobs(doc: dict) -> dict[str, dict]:
    return {k: v for k, v in doc.items() if k not in ("stages", "variables")}


def validate(*paths: Path) -> subprocess.CompletedProcess[str]:
    checker = Path(sys.executable).with_name("check-jsonschema")
    argv = [str(checker), "--builtin-schema", "vendor.gitlab-ci", *map(str, paths)]
    return subprocess.run(argv, capture_output=True, text=True, timeout=120)


def test_one_job_per_cell_named_by_cell_id_and_one_per_image() -> None:
    names = set(jobs(child()))
    assert names == {
        "site/base-deb-x86_64", "site/base-deb-arm64", "site/base-el-x86_64",
        "site/child-deb-x86_64", "site/child-deb-arm64", "site/child-el-x86_64",
        "exp/tool-deb-x86_64", "exp/tool-deb-arm64",
        "site/base-deb", "site/base-el", "site/child-deb", "site/child-el", "exp/tool-deb",
    }


def test_cell_job_builds_its_cell_on_its_runner() -> None:
    job = child()["site/base-deb-arm64"]
    assert job["script"] == [
        "$HEPBUILD_BUILD_CMD --select 'site/base-deb-arm64' $HEPBUILD_BUILD_ARGS"]
    assert job["tags"] == ["site", "arm64"]
    assert job["variables"]["HEPBUILD_EMULATED"] == "false"
    assert job["interruptible"] is True and job["timeout"] == "3h"
    assert job["artifacts"]["reports"]["junit"] == "build/reports/junit.xml"
    assert job["artifacts"]["paths"] == [
        "build/logs/", "build/records/", "build/reports/", "dist/**/*.sif"]


def test_arch_without_native_runner_goes_to_qemu_on_x86_64() -> None:
    job = child(runners={"x86_64": RUNNERS["x86_64"]})["site/base-deb-arm64"]
    assert job["tags"] == ["site", "x86_64"]
    assert job["variables"]["HEPBUILD_EMULATED"] == "true"


def test_emulation_host_is_the_first_native_runner_not_a_fixed_arch() -> None:
    qemu = Runner("x86", ("site", "qemu"), False)
    doc = child(runners={"x86": qemu, "arm64": RUNNERS["arm64"]})
    job = doc["site/base-deb-x86_64"]  # x86_64 has no runner entry here
    assert job["tags"] == ["site", "arm64"]
    assert job["variables"]["HEPBUILD_EMULATED"] == "true"
    assert child(runners={})["site/base-deb-arm64"].get("tags") is None


def test_child_needs_its_parent_job_same_base_and_arch() -> None:
    doc = child()
    assert doc["site/child-deb-arm64"]["needs"] == [
        {"job": "site/base-deb-arm64", "artifacts": False}]
    assert doc["site/base-deb-arm64"]["needs"] == []


def test_child_of_a_skipped_parent_needs_nothing() -> None:
    doc = child(skipped=("site/base-deb-arm64",))
    assert "site/base-deb-arm64" not in doc
    assert doc["site/child-deb-arm64"]["needs"] == []


def test_image_job_needs_all_its_arch_jobs_and_assembles_the_list() -> None:
    job = child()["site/base-deb"]
    assert job["needs"] == [{"job": "site/base-deb-x86_64", "artifacts": False},
                            {"job": "site/base-deb-arm64", "artifacts": False}]
    assert job["script"] == ["$HEPBUILD_LIST_CMD 'site/base-deb' --time \"$HEPBUILD_RELEASE_TIME\""]
    assert job["stage"] == "images"


def test_resource_groups_are_one_per_tag() -> None:
    groups = [j["resource_group"] for j in jobs(child()).values()]
    assert len(groups) == len(set(groups))
    assert child()["site/base-deb-arm64"]["resource_group"] == "hepbuild/site/base/1.0-deb-arm64"
    assert child()["site/base-deb"]["resource_group"] == "hepbuild/site/base/1.0-deb"


def test_merge_requests_push_nothing_and_assemble_no_lists() -> None:
    doc = child(publish=False)
    assert doc["variables"]["HEPBUILD_BUILD_ARGS"] == "--no-push"
    assert doc["stages"] == ["build"]
    assert all(j["stage"] == "build" for j in jobs(doc).values())


def test_merge_request_job_builds_its_rebuilt_parent_chain_itself() -> None:
    recipes = (make_recipe("a/one"), make_recipe("a/two", "a/one"), make_recipe("a/three", "a/two"))
    snap = snapshot(make_config(bases=(make_base("deb", arches=("x86_64",)),), recipes=recipes))
    plan = planned_cells(snap, skipped=("a/one-deb-x86_64",))
    mr = pipeline.child_pipeline(plan, snap, pipeline.PipelineOptions(False, "local"))
    assert mr["a/three-deb-x86_64"]["script"] == [
        "$HEPBUILD_BUILD_CMD --select 'a/two-deb-x86_64' --select 'a/three-deb-x86_64'"
        " $HEPBUILD_BUILD_ARGS"]
    pushed = pipeline.child_pipeline(plan, snap, pipeline.PipelineOptions(True, "local"))
    assert pushed["a/three-deb-x86_64"]["script"] == [
        "$HEPBUILD_BUILD_CMD --select 'a/three-deb-x86_64' $HEPBUILD_BUILD_ARGS"]


def test_setup_lines_become_every_jobs_before_script() -> None:
    snap = snapshot()
    plan = planned_cells(snap, ())
    options = pipeline.PipelineOptions(True, "local", setup=("pip install .", "hepbuild doctor"))
    doc = pipeline.child_pipeline(plan, snap, options)
    assert doc["default"] == {"before_script": ["pip install .", "hepbuild doctor"]}
    assert "default" not in child()


def test_default_branch_pushes() -> None:
    assert child()["variables"]["HEPBUILD_BUILD_ARGS"] == "--push --no-lists"


def test_generated_and_project_pipelines_pass_gitlab_schema(tmp_path: Path) -> None:
    paths = []
    snap = snapshot()
    with_setup = pipeline.child_pipeline(
        planned_cells(snap, ()), snap,
        pipeline.PipelineOptions(True, "local", setup=("python3 -m venv .venv",)),
    )
    for name, doc in {"full": child(), "mr": child(publish=False), "setup": with_setup}.items():
        path = tmp_path / f"{name}.yml"
        pipeline.write_pipeline(doc, path)
        paths.append(path)
    snap = snapshot()
    empty = pipeline.child_pipeline(Plan(None, "nothing", (), ()), snap,
                                    pipeline.PipelineOptions(True, "local"))
    pipeline.write_pipeline(empty, tmp_path / "empty.yml")
    result = validate(*paths, tmp_path / "empty.yml", REPO / ".gitlab-ci.yml")
    assert result.returncode == 0, result.stdout + result.stderr


def test_schema_check_can_fail(tmp_path: Path) -> None:
    """The validation above means something: a broken job is rejected."""
    doc = child()
    doc["site/base-deb-arm64"]["needs"] = "not-a-list"
    doc["site/base-deb-arm64"]["timeout"] = 5
    bad = tmp_path / "bad.yml"
    bad.write_text(yaml.safe_dump(doc))
    assert validate(bad).returncode != 0


@pytest.fixture(scope="module")
def parent() -> dict:
    return yaml.safe_load((REPO / ".gitlab-ci.yml").read_text())


def test_project_pipeline_stages_and_child_trigger(parent: dict) -> None:
    assert parent["stages"] == ["lint", "plan", "build", "publish"]
    trigger = parent["build"]["trigger"]
    assert trigger["include"] == [{"artifact": "build/child-pipeline.yml", "job": "plan"}]
    assert trigger["strategy"] == "depend"
    assert "build/child-pipeline.yml" in parent["plan"]["artifacts"]["paths"]


def test_project_pipeline_rules(parent: dict) -> None:
    plan_args = {r["if"]: r["variables"]["HEPBUILD_PLAN_ARGS"] for r in parent["plan"]["rules"]}
    assert plan_args['$CI_PIPELINE_SOURCE == "merge_request_event"'] == "--no-publish"
    assert plan_args['$CI_PIPELINE_SOURCE == "schedule"'] == "--all --force --publish"
    assert plan_args["$CI_COMMIT_BRANCH == $CI_DEFAULT_BRANCH"] == "--publish"
    publish_rules = parent["publish"]["rules"]
    assert publish_rules[0] == {"if": '$CI_PIPELINE_SOURCE == "merge_request_event"',
                                "when": "never"}


def test_project_pipeline_has_no_ignored_failures() -> None:
    text = (REPO / ".gitlab-ci.yml").read_text()
    assert "allow_failure" not in text and "continue-on-error" not in text
    jobs_text = [line for line in text.splitlines() if line.startswith("#") and ":" in line]
    assert not any(line.lstrip("# ").split(":")[0] in ("script", "stage") for line in jobs_text)
