"""Matrix expansion: cells, the reasons for dropped ones, order, selection and parents."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from hepbuild.cells import (
    base_image,
    expand_matrix,
    matrix_entries,
    parent_cell,
    select_cells,
)
from hepbuild.cli import main
from hepbuild.config.load import load_config
from hepbuild.config.model import Cell
from hepbuild.errors import ConfigError, UsageError

REPO = Path(__file__).resolve().parent.parent.parent
MINIMAL = REPO / "tests" / "data" / "recipes" / "minimal"


@pytest.fixture(autouse=True)
def _keep_cwd(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(Path.cwd())  # `hepbuild -C DIR` changes directory; undo it afterwards


def ids(cells: list[Cell]) -> list[str]:
    return [c.id for c in cells]


def test_local_profile_builds_debian12_only_parents_first() -> None:
    expansion = expand_matrix(load_config(REPO))
    cells = ids(expansion.cells)
    assert all("-debian12-" in c for c in cells)
    assert cells.index("base/compute-node-debian12-arm64") < \
        cells.index("juno/offline-env-debian12-arm64")
    assert "base/login-node-debian12-x86_64" in cells


def test_production_reasons() -> None:
    reasons = {d.cell_id: d.reason for d in expand_matrix(load_config(REPO, "production")).dropped}
    assert reasons["base/login-node-sl7-arm64"] == "sl7 has no arm64 build"
    assert reasons["base/login-node-sl5-x86"].startswith("excluded by rule at matrix.yaml:")
    assert reasons["base/login-node-sl5-x86"].endswith("saves two hours of qemu time per build")
    assert reasons["lhaaso/lhaaso-env-debian12-x86_64"].startswith(
        "recipe lhaaso/lhaaso-env is not made for debian12")
    assert reasons["lhaaso/lhaaso-env-centos7-x86"].startswith(
        "recipe lhaaso/lhaaso-env is not made for x86")


def test_include_rule_overrides_earlier_exclude() -> None:
    cells = ids(expand_matrix(load_config(REPO, "production")).cells)
    assert "monitoring/node-exporter-agent-centos7-arm" in cells
    assert "base/login-node-centos7-arm" not in cells


def test_child_cell_dropped_with_parent(tmp_path: Path) -> None:
    root = tmp_path / "p"
    shutil.copytree(MINIMAL, root)
    recipe = root / "recipes/demo/hello/recipe.yaml"
    recipe.write_text(recipe.read_text() + "arches: [arm64]\n")
    expansion = expand_matrix(load_config(root, "production"))
    reasons = {d.cell_id: d.reason for d in expansion.dropped}
    assert reasons["demo/child-debian12-x86_64"] == (
        "its parent cell demo/hello-debian12-x86_64 is not built (recipe demo/hello is not "
        "made for x86_64 (arches: arm64))")
    config = load_config(root, "production")
    orphan = Cell(config.recipe("demo/child"), config.matrix.bases["debian12"],
                  config.matrix.arches[0])
    with pytest.raises(ConfigError) as caught:
        parent_cell(config, orphan)
    assert "needs parent cell demo/hello-debian12-x86_64" in caught.value.problems[0].message


def test_base_image_profile_override_and_parent() -> None:
    config = load_config(REPO)
    cells = {c.id: c for c in expand_matrix(config).cells}
    assert base_image(config, cells["base/login-node-debian12-arm64"]) == \
        "127.0.0.1:5000/hepbuild-bases/debian12:arm64"
    assert base_image(config, cells["juno/offline-env-debian12-arm64"]) == \
        "127.0.0.1:5000/base/compute-node:1.4-debian12-arm64"
    production = load_config(REPO, "production")
    [sl7] = select_cells(expand_matrix(production).cells, ["base/login-node-sl7-x86_64"])
    assert base_image(production, sl7).startswith("harbor.ihep.example/common_base_image/sl7:")


def test_profile_from_environment() -> None:
    config = load_config(REPO, env={"HEPBUILD_PROFILE": "production"})
    assert config.profile.name == "production"
    assert load_config(REPO, "local", env={"HEPBUILD_PROFILE": "production"}).profile.name == \
        "local"


def test_select_cells_globs() -> None:
    cells = expand_matrix(load_config(REPO)).cells
    assert ids(select_cells(cells, ["base/*-arm64"])) == [
        "base/compute-node-debian12-arm64", "base/login-node-debian12-arm64"]
    # the local profile enables x86_64 and arm64 only (matrix.yaml)
    assert ids(select_cells(cells, ["juno/offline-env"])) == [
        "juno/offline-env-debian12-x86_64", "juno/offline-env-debian12-arm64"]
    with pytest.raises(UsageError) as caught:
        select_cells(cells, ["base/*", "base/login-node-sl9-*"])
    assert "login-node-sl9" in caught.value.message
    assert "base/login-node-debian12" in (caught.value.hint or "")


def test_matrix_entries_name_what_affects_a_cell() -> None:
    config = load_config(REPO, "production")
    [cell] = select_cells(expand_matrix(config).cells, ["monitoring/*-centos7-arm"])
    assert matrix_entries(config, cell) == (
        "arches", "bases.centos7", "profiles.production", "rules[3]", "rules[4]", "runners.arm")


def test_matrix_json_is_deterministic(capsys: pytest.CaptureFixture[str]) -> None:
    outputs = []
    for _ in range(2):
        assert main(["-C", str(REPO), "matrix", "--json", "--explain", "--profile",
                     "production"]) == 0
        outputs.append(capsys.readouterr().out)
    assert outputs[0] == outputs[1]
    payload = json.loads(outputs[0])
    first = payload["cells"][0]
    assert set(first) == {"cell", "recipe", "base", "arch", "platform", "parent"}
    assert {"cell": "base/login-node-sl7-arm64", "reason": "sl7 has no arm64 build"} in \
        payload["dropped"]


def test_render_command_writes_selected_cells(tmp_path: Path,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["-C", str(REPO), "render", "--select", "juno/*-arm64", "--out",
                 str(tmp_path), "--json"]) == 0
    payload = json.loads(capsys.readouterr().out)
    assert [r["cell"] for r in payload["rendered"]] == ["juno/offline-env-debian12-arm64"]
    assert (tmp_path / "juno/offline-env-debian12-arm64/Dockerfile").is_file()


def test_lint_passes_on_the_shipped_project(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["-C", str(REPO), "lint"]) == 0
    assert "no problems" in capsys.readouterr().err


def test_matrix_explain_table(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["-C", str(REPO), "matrix", "--explain", "--profile", "production",
                 "--select", "bes/*"]) == 0
    out = capsys.readouterr().out
    header, *rows = out.split("\n\ndropped")[0].splitlines()
    assert header.split() == ["CELL", "RECIPE", "BASE", "ARCH", "PLATFORM", "PARENT"]
    assert [r.split()[0] for r in rows] == ["bes/bes-env-sl5-x86_64", "bes/bes-env-sl6-x86",
                                           "bes/bes-env-sl6-x86_64", "bes/bes-env-sl7-x86_64"]
    dropped = {line.split()[0]: line for line in out.split("\n\ndropped", 1)[1].splitlines()[2:]}
    assert all(cell.startswith("bes/") for cell in dropped)
    assert "excluded by rule at matrix.yaml:" in dropped["bes/bes-env-sl5-x86"]
