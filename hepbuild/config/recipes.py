"""Recipes: recipes/<group>/<name>/recipe.yaml, or a directory with a plain Dockerfile.

A recipe's files must stay inside its directory, symlinks included: a recipe is often
copied from another centre, and ``src: ../../../etc/shadow`` must never reach an image.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hepbuild.config import schema
from hepbuild.config.document import Document, read_document
from hepbuild.config.model import FileCopy, Matrix, Packages, Recipe
from hepbuild.errors import ConfigError, Problem
from hepbuild.platforms import arch_names, get_arch, is_arch

RECIPES_DIR = "recipes"
RECIPE_FILE = "recipe.yaml"
DOCKERFILE = "Dockerfile"
SHELL_FORM = ("/bin/sh", "-c")


@dataclass
class RecipeLines:
    """Where each recipe's depends_on is written, for dependency problems found later."""

    depends_on: dict[str, tuple[str, int | None]] = field(default_factory=dict)


def discover_recipes(root: Path, problems: list[Problem]) -> list[Path]:
    top = root / RECIPES_DIR
    if not top.is_dir():
        return []
    found = []
    for group in sorted(p for p in top.iterdir() if p.is_dir() and not p.name.startswith(".")):
        for directory in sorted(p for p in group.iterdir() if p.is_dir()):
            if directory.name.startswith("."):
                continue
            if (directory / RECIPE_FILE).is_file() or (directory / DOCKERFILE).is_file():
                found.append(directory)
            else:
                problems.append(Problem(_rel(root, directory), None,
                                        f"no {RECIPE_FILE} or {DOCKERFILE} in this directory",
                                        "add a recipe.yaml (see docs/recipes.md) or remove it"))
    return found


def _rel(root: Path, path: Path) -> str:
    try:
        return str(path.relative_to(root))
    except ValueError:
        return str(path)


def load_recipe(root: Path, directory: Path, matrix: Matrix | None, problems: list[Problem],
                lines: RecipeLines | None = None) -> Recipe | None:
    path = directory / RECIPE_FILE
    shown = _rel(root, path)
    if not path.is_file():
        return _checked_dockerfile(root, _dockerfile_only(directory), problems)
    doc = read_document(path, shown, problems)
    if doc is None:
        return None
    if not isinstance(doc.data, dict):
        problems.append(doc.problem((), "recipe.yaml must be a mapping (name:, version:, ...)"))
        return None
    found = schema.validate("recipe", doc)
    if found:
        problems.extend(found)
        _check_meaning(schema.valid_part("recipe", doc), directory, matrix, problems)
        return None
    count = len(problems)
    recipe = _build_recipe(doc, directory, matrix, problems)
    if lines is not None and recipe.depends_on:
        lines.depends_on[recipe.id] = (shown, doc.line(("depends_on",)))
    if recipe.dockerfile is not None:
        _checked_dockerfile(root, recipe, problems)
    return recipe if len(problems) == count else None


def _checked_dockerfile(root: Path, recipe: Recipe, problems: list[Problem]) -> Recipe | None:
    """Parse the Dockerfile now, so lint reports what the definition converter refuses."""
    from hepbuild import dockerfile

    assert recipe.dockerfile is not None
    try:
        text = recipe.dockerfile.read_text(encoding="utf-8")
        dockerfile.parse(text, _rel(root, recipe.dockerfile))
    except OSError as exc:
        problems.append(Problem(_rel(root, recipe.dockerfile), None, f"cannot read: {exc}"))
        return None
    except ConfigError as exc:
        problems.extend(exc.problems)
        return None
    return recipe


def _dockerfile_only(directory: Path) -> Recipe:
    return Recipe(group=directory.parent.name, name=directory.name, version="0",
                  directory=directory, description=f"plain Dockerfile recipe {directory.name}",
                  dockerfile=directory / DOCKERFILE)


def _check_meaning(doc: Document, directory: Path, matrix: Matrix | None,
                   problems: list[Problem]) -> None:
    """The meaning checks alone, on the part of a recipe that passed its schema."""
    if not isinstance(doc.data, dict):
        return
    _check_name(doc, directory, problems)
    _env(doc, problems)
    _bases(doc, matrix, problems)
    _arches(doc, problems)
    _files(doc, directory, problems)
    _dockerfile(doc, directory, problems)


def _check_name(doc: Document, directory: Path, problems: list[Problem]) -> None:
    name = doc.data.get("name")
    if name is not None and name != directory.name:
        problems.append(doc.problem(("name",), f"name {name!r} differs from the "
                                    f"directory name {directory.name!r}",
                                    "cell ids use the name; rename one so they agree"))


def _build_recipe(doc: Document, directory: Path, matrix: Matrix | None,
                  problems: list[Problem]) -> Recipe:
    data = doc.data
    _check_name(doc, directory, problems)
    packages = data.get("packages", {})
    return Recipe(
        group=directory.parent.name, name=data["name"], version=str(data["version"]),
        directory=directory, description=data.get("description", ""),
        maintainers=tuple(data.get("maintainers", [])),
        bases=_bases(doc, matrix, problems), arches=_arches(doc, problems),
        packages=Packages(common=tuple(packages.get("common", [])),
                          yum=tuple(packages.get("yum", [])), apt=tuple(packages.get("apt", []))),
        env=_env(doc, problems),
        labels={k: _text(v) for k, v in data.get("labels", {}).items()},
        files=_files(doc, directory, problems),
        steps=tuple(data.get("steps", [])), test=data.get("test"),
        depends_on=data.get("depends_on"), outputs=tuple(data.get("outputs", ["oci"])),
        workdir=data.get("workdir"),
        entrypoint=_command(data.get("entrypoint")), cmd=_command(data.get("cmd")),
        dockerfile=_dockerfile(doc, directory, problems),
    )


def _env(doc: Document, problems: list[Problem]) -> dict[str, str]:
    env = {k: _text(v) for k, v in doc.data.get("env", {}).items()}
    for key, value in env.items():
        if "\n" in value or "\0" in value:
            problems.append(doc.problem(("env", key), f"env {key} contains a newline or NUL",
                                        "Dockerfile ENV and %environment take one line; "
                                        "use a file under files: for longer text"))
    return env


def _text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _command(value: str | list[str] | None) -> tuple[str, ...] | None:
    if value is None:
        return None
    if isinstance(value, str):
        return SHELL_FORM + (value,)
    return tuple(value)


def _bases(doc: Document, matrix: Matrix | None, problems: list[Problem]) -> tuple[str, ...]:
    names = doc.data.get("bases", [])
    if matrix is not None:
        for index, name in enumerate(names):
            if name not in matrix.bases:
                problems.append(doc.problem(("bases", index), f"unknown base {name!r}",
                                            "bases in matrix.yaml: " + ", ".join(matrix.bases)))
    return tuple(names)


def _arches(doc: Document, problems: list[Problem]) -> tuple[str, ...]:
    result = []
    for index, name in enumerate(doc.data.get("arches", [])):
        if is_arch(name):
            result.append(get_arch(name).name)
        else:
            problems.append(doc.problem(("arches", index), f"unknown architecture {name!r}",
                                        "use one of: " + ", ".join(arch_names())))
    return tuple(result)


def _files(doc: Document, directory: Path, problems: list[Problem]) -> tuple[FileCopy, ...]:
    copies = []
    for index, spec in enumerate(doc.data.get("files", [])):
        if "src" not in spec:  # only after a schema error, which already names it
            continue
        problem = inside_problem(directory, spec["src"])
        if problem:
            problems.append(doc.problem(("files", index, "src"), problem,
                                        "files must live in the recipe directory; copy them in"))
            continue
        copies.append(FileCopy(src=spec["src"], dest=spec.get("dest", "")))
    return tuple(copies)


def inside_problem(directory: Path, src: str) -> str | None:
    """Why ``src`` may not be used (outside the directory, missing), or None when it is fine."""
    if os.path.isabs(src):
        return f"file {src!r} is an absolute path"
    top = directory.resolve()
    target = directory / src
    if not _within(top, target.resolve()):
        how = "through a symlink" if _within(top, Path(os.path.normpath(target))) else "via .."
        return f"file {src!r} reaches outside the recipe directory ({how})"
    if not target.exists():
        return f"file {src!r} does not exist in the recipe directory"
    if target.is_dir():
        return _escaping_link(top, target)
    return None


def _within(top: Path, path: Path) -> bool:
    return path == top or top in path.parents


def _escaping_link(top: Path, tree: Path) -> str | None:
    for current, dirs, names in os.walk(tree):
        for name in sorted(dirs + names):
            entry = Path(current) / name
            if entry.is_symlink() and not _within(top, entry.resolve()):
                return (f"{entry.relative_to(top)} is a symlink that reaches outside the "
                        "recipe directory")
    return None


def _dockerfile(doc: Document, directory: Path, problems: list[Problem]) -> Path | None:
    name = doc.data.get("dockerfile")
    if name is None:
        return None
    problem = inside_problem(directory, name)
    if problem:
        problems.append(doc.problem(("dockerfile",), problem, "keep the Dockerfile in the recipe"))
        return None
    for key in ("packages", "files", "steps", "depends_on", "entrypoint", "cmd", "workdir", "env"):
        if key in doc.data:
            problems.append(doc.problem((key,), f"{key!r} cannot be combined with dockerfile:",
                                        "put it in the Dockerfile instead"))
    return directory / name


def check_dependencies(recipes: list[Recipe], lines: RecipeLines, problems: list[Problem],
                       broken: set[str] | frozenset[str] = frozenset()) -> None:
    """Unknown parents and cycles in depends_on, each reported where it is written."""
    by_id = {r.id: r for r in recipes}
    for recipe in recipes:
        if recipe.depends_on and recipe.depends_on not in by_id.keys() | broken:
            file, line = lines.depends_on.get(recipe.id, (recipe.id, None))
            near = [r for r in by_id if r.split("/")[-1] == recipe.depends_on.split("/")[-1]]
            hint = f"did you mean {near[0]}?" if near else "known recipes: " + ", ".join(by_id)
            problems.append(Problem(file, line, f"depends_on {recipe.depends_on!r} is not a "
                                    "recipe", hint))
    for cycle in _cycles(by_id):
        first = cycle[0]
        file, line = lines.depends_on.get(first, (first, None))
        problems.append(Problem(file, line, "depends_on cycle: " + " -> ".join(cycle + [first]),
                                "a recipe cannot be built FROM itself; break the chain"))


def _cycles(by_id: dict[str, Recipe]) -> list[list[str]]:
    seen: set[str] = set()
    cycles = []
    for start in sorted(by_id):
        chain: list[str] = []
        current: str | None = start
        while current in by_id and current not in seen and current not in chain:
            chain.append(current)
            current = by_id[current].depends_on
        if current in chain:
            cycles.append(chain[chain.index(current):])
        seen.update(chain)
    return cycles
