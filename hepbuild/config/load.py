"""Read matrix.yaml and every recipe into a typed Config, reporting every problem at once.

Each file is parsed keeping its lines (document.py), checked against its JSON Schema
(schema.py), then checked for meaning here. Problems from all files are collected and raised
together as one ConfigError, so ``hepbuild lint`` shows the whole list in one run.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from hepbuild.config import schema
from hepbuild.config.document import Document, read_document
from hepbuild.config.model import (
    Base,
    Bootstrap,
    Config,
    FileCopy,
    Matrix,
    Packages,
    Profile,
    Recipe,
    Registry,
    Rule,
    Runner,
)
from hepbuild.config.recipes import (
    RecipeLines,
    check_dependencies,
    discover_recipes,
    load_recipe,
)
from hepbuild.errors import ConfigError, Problem, UsageError
from hepbuild.platforms import Arch, arch_names, get_arch, is_arch

MATRIX_FILE = "matrix.yaml"
PROFILE_ENV = "HEPBUILD_PROFILE"

__all__ = ["load_config", "load_matrix", "FileCopy", "Packages", "Recipe"]


def load_config(root: Path, profile: str | None = None,
                env: Mapping[str, str] | None = None) -> Config:
    """The whole project under ``root``; raises ConfigError listing every problem found."""
    root = Path(root).resolve()
    problems: list[Problem] = []
    matrix = load_matrix(root, problems)
    recipes = _load_recipes(root, matrix, problems)
    if problems or matrix is None:
        raise ConfigError(sorted(problems, key=lambda p: (p.file, p.line or 0)))
    chosen = _choose_profile(matrix, profile, env if env is not None else os.environ, problems)
    if problems or chosen is None:
        raise ConfigError(problems)
    return Config(root=root, matrix=matrix, recipes=recipes, profile=chosen)


def _load_recipes(root: Path, matrix: Matrix | None, problems: list[Problem]) -> tuple[Recipe, ...]:
    recipes = []
    lines = RecipeLines()
    broken: set[str] = set()  # recipes with problems: not reported again as unknown parents
    for directory in discover_recipes(root, problems):
        recipe = load_recipe(root, directory, matrix, problems, lines)
        if recipe is not None:
            recipes.append(recipe)
        else:
            broken.add(f"{directory.parent.name}/{directory.name}")
    recipes.sort(key=lambda r: r.id)
    check_dependencies(recipes, lines, problems, broken)
    return tuple(recipes)


def _choose_profile(matrix: Matrix, wanted: str | None, env: Mapping[str, str],
                    problems: list[Problem]) -> Profile | None:
    name = wanted or env.get(PROFILE_ENV) or matrix.default_profile
    if name in matrix.profiles:
        return matrix.profiles[name]
    source = "--profile" if wanted else (PROFILE_ENV if env.get(PROFILE_ENV) else "default_profile")
    valid = ", ".join(sorted(matrix.profiles))
    if source == "default_profile":
        problems.append(Problem(_shown(matrix.path, matrix.path.parent), None,
                                f"default_profile {name!r} is not defined", f"profiles: {valid}"))
        return None
    raise UsageError(f"unknown profile {name!r} (from {source})", f"choose one of: {valid}")


def _shown(path: Path, root: Path) -> str:
    try:
        return str(path.relative_to(root))
    except ValueError:
        return str(path)


# --- matrix.yaml ---------------------------------------------------------------------------


def load_matrix(root: Path, problems: list[Problem]) -> Matrix | None:
    path = root / MATRIX_FILE
    if not path.is_file():
        problems.append(Problem(MATRIX_FILE, None, f"no {MATRIX_FILE} in {root}",
                                "run hepbuild in the project directory or pass -C DIR"))
        return None
    doc = read_document(path, MATRIX_FILE, problems)
    if doc is None:
        return None
    if not isinstance(doc.data, dict):
        problems.append(doc.problem((), "matrix.yaml must be a mapping (arches:, bases:, ...)"))
        return None
    found = schema.validate("matrix", doc)
    problems.extend(found)
    if found:
        _check_arches(schema.valid_part("matrix", doc), problems)
        return None
    return _build_matrix(path, doc, problems)


def _check_arches(doc: Document, problems: list[Problem]) -> None:
    """After a schema error, still name every unknown architecture in what passed the schema.
    Checks that compare sections (unknown bases, missing images) are left for the next run:
    a section the schema refused would make them report problems that are not there."""
    if not isinstance(doc.data, dict):
        return
    arches = _matrix_arches(doc, problems) if "arches" in doc.data else ()
    known = {a.name for a in arches} if "arches" in doc.data else set(arch_names())
    for name, spec in doc.data.get("bases", {}).items():
        where = ("bases", name)
        _arch_list(doc, where + ("arches",), spec.get("arches", []), known, problems)
        _arch_images(doc, where + ("images",), spec.get("images", {}), problems)


def _build_matrix(path: Path, doc: Document, problems: list[Problem]) -> Matrix | None:
    data = doc.data
    count = len(problems)
    arches = _matrix_arches(doc, problems)
    known = {a.name for a in arches}
    bases = {name: _base(doc, name, spec, known, problems) for name, spec in data["bases"].items()}
    profiles = {name: _profile(doc, name, spec, bases, known, problems)
                for name, spec in data["profiles"].items()}
    rules = tuple(_rule(doc, i, spec, bases, known, problems)
                  for i, spec in enumerate(data.get("rules", [])))
    runners = _runners(doc, data.get("runners", {}), known, problems)
    default = data.get("default_profile", "local")
    if default not in profiles:
        problems.append(doc.problem(("default_profile",), f"default_profile {default!r} is not "
                                    "defined", "profiles: " + ", ".join(sorted(profiles))))
    templates = data.get("templates")
    if len(problems) != count:
        return None
    return Matrix(
        path=path, arches=arches, bases=bases, profiles=profiles, default_profile=default,
        rules=rules, runners=runners,
        templates=(path.parent / templates).resolve() if templates else None,
        source=data.get("source"),
    )


def _arch(doc: Document, where: tuple[Any, ...], name: str, problems: list[Problem]) -> Arch | None:
    if is_arch(str(name)):
        return get_arch(str(name))
    problems.append(doc.problem(where, f"unknown architecture {name!r}",
                                "use one of: " + ", ".join(arch_names())))
    return None


def _matrix_arches(doc: Document, problems: list[Problem]) -> tuple[Arch, ...]:
    found = [_arch(doc, ("arches", i), n, problems) for i, n in enumerate(doc.data["arches"])]
    return tuple(a for a in found if a is not None)


def _arch_list(doc: Document, where: tuple[Any, ...], names: list[str], known: set[str],
               problems: list[Problem]) -> tuple[str, ...]:
    result = []
    for index, name in enumerate(names):
        arch = _arch(doc, where + (index,), name, problems)
        if arch is None:
            continue
        if arch.name not in known:
            problems.append(doc.problem(where + (index,), f"arch {arch.name} is not in the "
                                        "matrix arches", "add it to arches: at the top"))
            continue
        result.append(arch.name)
    return tuple(result)


def _base(doc: Document, name: str, spec: dict[str, Any], known: set[str],
          problems: list[Problem]) -> Base:
    where = ("bases", name)
    arches = _arch_list(doc, where + ("arches",), spec["arches"], known, problems)
    images = _arch_images(doc, where + ("images",), spec["images"], problems)
    for arch in arches:
        if arch not in images:
            problems.append(doc.problem(where + ("images",), f"base {name} has no image for "
                                        f"{arch}", f"add images: {{{arch}: <reference>}}"))
    for arch in images:
        if arch not in arches:
            problems.append(doc.problem(where + ("images", arch), f"base {name} has an image "
                                        f"for {arch} but {arch} is not in its arches"))
    boot = spec.get("bootstrap")
    return Base(
        name=name, family=spec["family"], arches=arches, images=images,
        description=spec.get("description", ""),
        repo_fixups=tuple(spec.get("repo_fixups", [])),
        bootstrap=_bootstrap(boot) if boot else None,
        needs_vsyscall=bool(spec.get("needs_vsyscall", False)),
        line=doc.line(where),
    )


def _arch_images(doc: Document, where: tuple[Any, ...], images: dict[str, str],
                 problems: list[Problem]) -> dict[str, str]:
    result = {}
    for key, ref in images.items():
        arch = _arch(doc, where + (key,), key, problems)
        if arch is not None:
            result[arch.name] = ref
    return result


def _bootstrap(spec: dict[str, Any]) -> Bootstrap:
    return Bootstrap(
        method=spec["method"], suite=spec.get("suite"), variant=spec.get("variant"),
        mirror=spec.get("mirror"), packages=tuple(spec.get("packages", [])),
        repos=tuple(spec.get("repos", [])),
    )


def _profile(doc: Document, name: str, spec: dict[str, Any], bases: dict[str, Base],
             known: set[str], problems: list[Problem]) -> Profile:
    where = ("profiles", name)
    reg = spec["registry"]
    registry = Registry(
        name=reg.get("name", name), url=reg["url"], kind=reg.get("kind", "distribution"),
        insecure=reg.get("insecure", False), ca_file=reg.get("ca_file"),
        project=reg.get("project"), public=reg.get("public", False), api=reg.get("api"),
        sif_repo_suffix=reg.get("sif_repo_suffix", ""),
    )
    overrides: dict[str, dict[str, str]] = {}
    for base, images in spec.get("bases", {}).items():
        if base not in bases:
            problems.append(_unknown_base(doc, where + ("bases", base), base, bases))
            continue
        overrides[base] = _arch_images(doc, where + ("bases", base), images, problems)
    enabled = spec.get("bases_enabled", [])
    for index, base in enumerate(enabled):
        if base not in bases:
            problems.append(_unknown_base(doc, where + ("bases_enabled", index), base, bases))
    arches = _arch_list(doc, where + ("arches_enabled",), spec.get("arches_enabled", []),
                        known, problems)
    return Profile(
        name=name, registry=registry, bases=overrides, base_registry=spec.get("base_registry"),
        bootstrap=spec.get("bootstrap", False), bases_enabled=tuple(enabled),
        arches_enabled=arches,
    )


def _unknown_base(doc: Document, where: tuple[Any, ...], base: str,
                  bases: Mapping[str, Base]) -> Problem:
    return doc.problem(where, f"unknown base {base!r}",
                       "bases in matrix.yaml: " + ", ".join(bases))


def _rule(doc: Document, index: int, spec: dict[str, Any], bases: dict[str, Base],
          known: set[str], problems: list[Problem]) -> Rule:
    where = ("rules", index)
    base = spec.get("base", "*")
    if not _is_glob(base) and base not in bases:
        problems.append(_unknown_base(doc, where + ("base",), base, bases))
    arch = spec.get("arch", "*")
    if not _is_glob(arch):
        found = _arch(doc, where + ("arch",), arch, problems)
        arch = found.name if found else arch
    return Rule(action=spec["action"], recipe=spec.get("recipe", "*"), base=base, arch=arch,
                reason=spec["reason"], line=doc.line(where))


def _is_glob(text: str) -> bool:
    return any(c in text for c in "*?[")


def _runners(doc: Document, spec: dict[str, Any], known: set[str],
             problems: list[Problem]) -> dict[str, Runner]:
    runners = {}
    for key, value in spec.items():
        arch = _arch(doc, ("runners", key), key, problems)
        if arch is None:
            continue
        runners[arch.name] = Runner(arch=arch.name, tags=tuple(value["tags"]),
                                    native=value["native"])
    return runners
