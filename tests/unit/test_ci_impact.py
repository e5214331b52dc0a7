"""Changed files -> planned cells, on small hand-built configs (no git, no tools)."""

from __future__ import annotations

import dataclasses
import hashlib
from pathlib import Path

from hepbuild.ci import impact
from hepbuild.ci.project import Snapshot
from hepbuild.config.model import Base, Cell, Config, Matrix, Profile, Recipe, Registry, Runner
from hepbuild.platforms import get_arch

ROOT = Path("/project")
X86_64, ARM64 = get_arch("x86_64"), get_arch("arm64")


def make_base(
    name: str, family: str = "apt", arches: tuple[str, ...] = ("x86_64", "arm64")
) -> Base:
    images = {a: f"example.org/{name}:{a}" for a in arches}
    return Base(name, family, arches, images)  # type: ignore[arg-type]


def make_recipe(
    recipe_id: str, depends_on: str | None = None, bases: tuple[str, ...] = ()
) -> Recipe:
    group, name = recipe_id.split("/")
    return Recipe(group, name, "1.0", ROOT / "recipes" / group / name, bases=bases,
                  depends_on=depends_on)


def make_config(
    bases: tuple[Base, ...] | None = None,
    recipes: tuple[Recipe, ...] | None = None,
    registry_url: str = "127.0.0.1:5000",
    runners: dict[str, Runner] | None = None,
) -> Config:
    bases = bases or (make_base("deb"), make_base("el", "yum", ("x86_64",)))
    recipes = recipes or (
        make_recipe("site/base"), make_recipe("site/child", "site/base"),
        make_recipe("exp/tool", bases=("deb",)),
    )
    registry = Registry("local", registry_url, insecure=True)
    profile = Profile("local", registry)
    matrix = Matrix(ROOT / "matrix.yaml", (X86_64, ARM64), {b.name: b for b in bases},
                    {"local": profile}, "local", runners=runners or {})
    return Config(ROOT, matrix, recipes, profile)


def expand(config: Config) -> tuple[Cell, ...]:
    """Parents first, every base/arch a recipe allows (enough for these tests)."""
    cells = []
    for recipe in config.recipes:
        for base in config.matrix.bases.values():
            if recipe.bases and base.name not in recipe.bases:
                continue
            cells += [Cell(recipe, base, get_arch(a)) for a in base.arches]
    return tuple(cells)


def fake_key(config: Config, cell: Cell) -> str:
    """Stands in for the renderer's key: it changes whenever the cell's inputs change."""
    return "sha256:" + hashlib.sha256(repr((cell.id, cell.base, cell.recipe)).encode()).hexdigest()


def snapshot(config: Config | None = None, templates_of: dict | None = None) -> Snapshot:
    """Each recipe renders the templates named for it (Dockerfile.j2 unless told)."""
    config = config or make_config()
    used = templates_of or {}

    def templates(config: Config, cell: Cell) -> tuple[str, ...]:
        return used.get(cell.recipe.id, ("templates/Dockerfile.j2",))

    return Snapshot(config, expand(config), fake_key, templates)


def planned(changed: list[str], new: Snapshot, old: Snapshot | None = None) -> dict[str, list[str]]:
    reasons = impact.affected_by_files(changed, new, old, "matrix.yaml")
    impact.add_dependents(reasons, new)
    return reasons


def test_unrelated_files_plan_nothing() -> None:
    assert planned(["docs/ci.md", "tests/unit/test_x.py", "README.md"], snapshot()) == {}


def test_recipe_change_plans_its_cells_and_its_dependents() -> None:
    reasons = planned(["recipes/site/base/recipe.yaml"], snapshot())
    assert sorted(reasons) == [
        "site/base-deb-arm64", "site/base-deb-x86_64", "site/base-el-x86_64",
        "site/child-deb-arm64", "site/child-deb-x86_64", "site/child-el-x86_64",
    ]
    assert reasons["site/base-el-x86_64"] == [
        "recipe site/base changed (recipes/site/base/recipe.yaml)"]
    assert reasons["site/child-deb-arm64"] == ["parent site/base-deb-arm64 is planned"]


def test_child_change_does_not_plan_its_parent() -> None:
    reasons = planned(["recipes/site/child/files/motd"], snapshot())
    assert sorted(reasons) == ["site/child-deb-arm64", "site/child-deb-x86_64",
                               "site/child-el-x86_64"]


def test_dependents_are_transitive() -> None:
    recipes = (make_recipe("a/one"), make_recipe("a/two", "a/one"), make_recipe("a/three", "a/two"))
    new = snapshot(make_config(bases=(make_base("deb", arches=("x86_64",)),), recipes=recipes))
    assert sorted(planned(["recipes/a/one/recipe.yaml"], new)) == [
        "a/one-deb-x86_64", "a/three-deb-x86_64", "a/two-deb-x86_64"]


def test_template_change_plans_every_cell_that_rendered_it() -> None:
    new = snapshot(templates_of={"exp/tool": ("Dockerfile.j2", "partials/apt.j2"),
                                 "site/base": ("Dockerfile.j2", "templates/partials/yum.j2")})
    assert sorted(planned(["templates/partials/apt.j2"], new)) == [
        "exp/tool-deb-arm64", "exp/tool-deb-x86_64"]
    yum = planned(["templates/partials/yum.j2"], new)
    assert sorted(yum) == [  # site/base by the template, site/child as its dependent
        "site/base-deb-arm64", "site/base-deb-x86_64", "site/base-el-x86_64",
        "site/child-deb-arm64", "site/child-deb-x86_64", "site/child-el-x86_64"]
    assert yum["site/base-el-x86_64"] == ["template templates/partials/yum.j2 changed"]


def test_hepbuild_code_change_plans_every_cell() -> None:
    new = snapshot()
    reasons = planned(["hepbuild/render.py"], new)
    assert sorted(reasons) == sorted(c.id for c in new.cells)
    assert reasons["exp/tool-deb-x86_64"] == ["hepbuild itself changed (hepbuild/render.py)"]


def test_changed_base_plans_that_base_only() -> None:
    old = snapshot()
    el = dataclasses.replace(make_base("el", "yum", ("x86_64",)), repo_fixups=("sed -i x f",))
    new = snapshot(make_config(bases=(make_base("deb"), el)))
    reasons = planned(["matrix.yaml"], new, old)
    assert sorted(reasons) == ["site/base-el-x86_64", "site/child-el-x86_64"]
    assert reasons["site/base-el-x86_64"] == ["base el changed in matrix.yaml"]


def test_changed_base_image_of_one_arch_plans_that_arch_only() -> None:
    old = snapshot()
    deb = make_base("deb")
    pinned = "example.org/deb@sha256:" + "1" * 64
    deb = dataclasses.replace(deb, images={**deb.images, "arm64": pinned})
    new = snapshot(make_config(bases=(deb, make_base("el", "yum", ("x86_64",)))))
    assert sorted(planned(["matrix.yaml"], new, old)) == [
        "exp/tool-deb-arm64", "site/base-deb-arm64", "site/child-deb-arm64"]


def test_a_line_shift_in_matrix_yaml_plans_nothing() -> None:
    old = snapshot()
    moved = dataclasses.replace(make_base("deb"), line=99)
    new = snapshot(make_config(bases=(moved, make_base("el", "yum", ("x86_64",)))))
    assert planned(["matrix.yaml"], new, old) == {}


def test_an_added_arch_plans_the_new_cells() -> None:
    old = snapshot()
    el = make_base("el", "yum", ("x86_64", "arm64"))
    new = snapshot(make_config(bases=(make_base("deb"), el)))
    reasons = planned(["matrix.yaml"], new, old)
    assert sorted(reasons) == ["site/base-el-arm64", "site/child-el-arm64"]
    assert reasons["site/base-el-arm64"] == ["added to the matrix in matrix.yaml"]


def test_a_new_registry_plans_every_cell() -> None:
    old = snapshot()
    new = snapshot(make_config(registry_url="harbor.example.org/hep"))
    assert len(planned(["matrix.yaml"], new, old)) == len(new.cells)


def test_runner_tags_do_not_rebuild_images() -> None:
    old = snapshot()
    runners = {"arm64": Runner("arm64", ("arm64",), True)}
    assert planned(["matrix.yaml"], snapshot(make_config(runners=runners)), old) == {}


def test_unloadable_old_matrix_plans_every_cell() -> None:
    new = snapshot()
    assert len(planned(["matrix.yaml"], new, None)) == len(new.cells)
