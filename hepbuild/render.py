"""Cells to text: a Dockerfile and an Apptainer definition that mean the same, plus a context.

Rendering is pure and deterministic: a sandboxed Jinja environment with StrictUndefined,
inputs sorted before they reach a template, no timestamps. What does not depend on the
arch (quoted env, labels, steps, the context digest) is computed once per recipe.

The build context of both files is ``<out>/<cell id>/context/``: the Dockerfile's COPY and
the definition's %files name paths relative to it.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shlex
import shutil
import tempfile
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any, NamedTuple, TypeVar

import jinja2
from jinja2.sandbox import SandboxedEnvironment

from hepbuild import __version__
from hepbuild.cells import base_image
from hepbuild.config.model import Cell, Config, Recipe
from hepbuild.errors import RenderError

DEFAULT_TEMPLATES = Path(__file__).resolve().parent.parent / "templates"
DOCKERFILE_TEMPLATE = "Dockerfile.j2"
DEFINITION_TEMPLATE = "apptainer.def.j2"
KEY_LABEL = "org.hepbuild.content-key"
_SPACES = re.compile(r"\s+")
T = TypeVar("T")


class Texts(NamedTuple):
    dockerfile: str
    definition: str


@dataclass(frozen=True)
class Rendered:
    cell: Cell
    directory: Path
    dockerfile: Path
    definition: Path
    context_dir: Path
    base_image: str
    content_key: str
    labels: dict[str, str]
    templates: tuple[str, ...] = ()  # template files used, relative to the project root


@dataclass(frozen=True)
class _Result:
    texts: Texts
    base_image: str
    content_key: str
    labels: dict[str, str]
    templates: tuple[str, ...]


# --- public entry points --------------------------------------------------------------------


def render_texts(config: Config, cell: Cell, base_digest: str | None = None, *,
                 parent_key: str | None = None) -> Texts:
    """The Dockerfile and definition of ``cell``, in memory; nothing is written."""
    return _render(config, cell, base_digest, parent_key).texts


def render_cell(config: Config, cell: Cell, out_root: Path,
                base_digest: str | None = None, *, parent_key: str | None = None) -> Rendered:
    """Write out_root/<cell id>/{Dockerfile,apptainer.def,context/} atomically.

    ``base_digest`` pins the base image; for a child recipe ``parent_key`` is the parent
    cell's content key, so that a changed parent changes the key of every descendant.
    """
    result = _render(config, cell, base_digest, parent_key)
    final = Path(out_root) / cell.id
    final.parent.mkdir(parents=True, exist_ok=True)
    with _staging_dir(final) as staging:
        (staging / "Dockerfile").write_text(result.texts.dockerfile, encoding="utf-8")
        (staging / "apptainer.def").write_text(result.texts.definition, encoding="utf-8")
        _fill_context(cell.recipe, staging / "context")
    return Rendered(
        cell=cell, directory=final, dockerfile=final / "Dockerfile",
        definition=final / "apptainer.def", context_dir=final / "context",
        base_image=result.base_image, content_key=result.content_key, labels=result.labels,
        templates=result.templates,
    )


def content_key_of(config: Config, cell: Cell, base_digest: str | None = None, *,
                   parent_key: str | None = None) -> str:
    return _render(config, cell, base_digest, parent_key).content_key


# --- the render itself ------------------------------------------------------------------------


def _render(config: Config, cell: Cell, base_digest: str | None,
            parent_key: str | None = None) -> _Result:
    image = pin_digest(base_image(config, cell), base_digest)
    labels = _labels(config, cell)
    templates: tuple[str, ...] = ()
    if cell.recipe.dockerfile is not None:
        texts, image = _render_dockerfile_recipe(cell, image, labels)
    else:
        texts = _render_templates(config, cell, image, labels)
        templates = _template_names(config, cell.base.family)
    key = _content_key(cell.recipe, texts, base_digest, parent_key)
    labels = {**labels, KEY_LABEL: key}
    return _Result(_with_key(texts, cell, key), image, key, labels, templates)


def pin_digest(image: str, digest: str | None) -> str:
    """``image`` pinned to ``digest`` (replacing any digest it had); unchanged without one."""
    if not digest:
        return image
    if not re.fullmatch(r"sha256:[0-9a-f]{64}", digest):
        raise RenderError(f"base digest {digest!r} is not a sha256 digest",
                          "pass sha256:<64 hex digits>")
    return f"{image.split('@', 1)[0]}@{digest}"


def _labels(config: Config, cell: Cell) -> dict[str, str]:
    """Every label but the content key, sorted by name (the key is added last)."""
    shared = _per_recipe(f"labels:{cell.base.name}", cell.recipe,
                         lambda recipe: _shared_labels(config, cell))
    merged = {**shared, "org.hepbuild.cell": cell.id}
    return {k: merged[k] for k in sorted(merged)}


def _shared_labels(config: Config, cell: Cell) -> dict[str, str]:
    """The labels all arches of a recipe x base share, whitespace folded to one line."""
    recipe = cell.recipe
    ours = {
        "org.opencontainers.image.title": recipe.id,
        "org.opencontainers.image.version": recipe.version,
        "org.opencontainers.image.description": recipe.description,
        "org.opencontainers.image.authors": ", ".join(recipe.maintainers),
        "org.opencontainers.image.source": config.matrix.source or "",
        "org.hepbuild.recipe": recipe.id,
        "org.hepbuild.version": __version__,
        # SL5/SL6 glibc calls vsyscall; hosts need vsyscall=emulate to run these images
        "org.hepbuild.needs-vsyscall": "true" if cell.base.needs_vsyscall else "",
    }
    merged = {**recipe.labels, **{k: v for k, v in ours.items() if v}}
    return {k: _SPACES.sub(" ", v).strip() for k, v in merged.items()}


def _with_key(texts: Texts, cell: Cell, key: str) -> Texts:
    """Add the content-key label last: the key hashes the texts without it."""
    docker = texts.dockerfile + f"LABEL {KEY_LABEL}={docker_quote(key)}\n"
    definition = texts.definition
    marker = "%labels\n"
    if marker in definition:
        head, tail = definition.split(marker, 1)
        block, sep, rest = tail.partition("\n\n")
        definition = f"{head}{marker}{block}\n    {KEY_LABEL} {key}{sep}{rest}"
    else:
        definition += f"\n%labels\n    {KEY_LABEL} {key}\n"
    return Texts(docker, definition)


def _render_templates(config: Config, cell: Cell, image: str, labels: dict[str, str]) -> Texts:
    env = _environment(template_dir(config))
    context = {**_recipe_context(cell.recipe), **_base_context(env, cell),
               "cell_id": cell.id, "base_image": image,
               "labels_docker": [f"{k}={docker_quote(v)}" for k, v in labels.items()],
               "labels_def": [f"{k} {v}" for k, v in labels.items()]}
    return Texts(_run(env, DOCKERFILE_TEMPLATE, context, cell),
                 _run(env, DEFINITION_TEMPLATE, context, cell))


def _base_context(env: SandboxedEnvironment, cell: Cell) -> dict[str, Any]:
    """What a recipe x base shares across arches: packages, fix-ups, install commands."""
    def build(recipe: Recipe) -> dict[str, Any]:
        packages = recipe.packages.for_family(cell.base.family)
        install = _install_lines(env, cell, packages) if packages else []
        return {"family": cell.base.family, "packages": list(packages),
                "fixups": list(cell.base.repo_fixups),
                "install": list(cell.base.repo_fixups) + install}

    return _per_recipe(f"base:{cell.base.name}:{id(env)}", cell.recipe, build)


def _install_lines(env: SandboxedEnvironment, cell: Cell, packages: tuple[str, ...]) -> list[str]:
    """The family partial's install commands; one render per family and package list."""
    key = (id(env), cell.base.family, packages)
    lines = _INSTALL_CACHE.get(key)
    if lines is None:
        name = f"partials/{cell.base.family}.j2"
        try:
            module: Any = env.get_template(name).module
            text = str(module.install(list(packages)))
        except jinja2.TemplateNotFound:
            raise RenderError(f"cell {cell.id}: template {name} not found",
                              f"add {name} to the template directory") from None
        except jinja2.TemplateError as exc:
            raise RenderError(f"{_template_line(exc)}: {exc} (rendering {cell.id})",
                              "fix the family partial") from None
        lines = [line.strip() for line in text.splitlines() if line.strip()]
        _INSTALL_CACHE[key] = lines
    return lines


_INSTALL_CACHE: dict[tuple[int, str, tuple[str, ...]], list[str]] = {}


def _run(env: SandboxedEnvironment, name: str, context: dict[str, Any], cell: Cell) -> str:
    try:
        return _template(env, name).render(context)
    except jinja2.TemplateNotFound as exc:
        raise RenderError(f"cell {cell.id}: template {exc.name} not found",
                          "put it in the template directory (matrix.yaml `templates:`)") from None
    except jinja2.TemplateSyntaxError as exc:
        raise RenderError(f"{exc.filename or exc.name}:{exc.lineno}: {exc.message} "
                          f"(rendering {cell.id})", "fix the template") from None
    except (jinja2.TemplateError, jinja2.sandbox.SecurityError) as exc:
        raise RenderError(f"{_template_line(exc)}: {exc} (rendering {cell.id})",
                          "a template used a name the renderer does not provide; "
                          "see docs/recipes.md for the variables") from None


def _template_line(exc: BaseException) -> str:
    """file:line of the innermost template frame (Jinja rewrites tracebacks to show them)."""
    frames = [f for f in traceback.extract_tb(exc.__traceback__) if f.filename.endswith(".j2")]
    return f"{frames[-1].filename}:{frames[-1].lineno}" if frames else "template"


def template_dir(config: Config) -> Path:
    """matrix.yaml's `templates:`, else the project's templates/, else hepbuild's own."""
    return _template_dir(config.root, config.matrix.templates)


@cache
def _template_dir(root: Path, configured: Path | None) -> Path:
    if configured is not None:
        return configured
    local = root / "templates"
    return local if (local / DOCKERFILE_TEMPLATE).is_file() else DEFAULT_TEMPLATES


def _template_names(config: Config, family: str) -> tuple[str, ...]:
    """The templates a cell of ``family`` renders, relative to the project root."""
    return _template_names_in(config.root, template_dir(config), family)


@cache
def _template_names_in(root: Path, directory: Path, family: str) -> tuple[str, ...]:
    used = (DOCKERFILE_TEMPLATE, DEFINITION_TEMPLATE, f"partials/{family}.j2")
    try:
        prefix = directory.relative_to(root)
    except ValueError:  # hepbuild's own templates, outside the project
        prefix = Path("templates")
    return tuple(str(prefix / name) for name in used)


_TEMPLATES: dict[tuple[int, str], jinja2.Template] = {}


def _template(env: SandboxedEnvironment, name: str) -> jinja2.Template:
    """Compiled once per environment: templates are not reloaded during a run."""
    key = (id(env), name)
    if key not in _TEMPLATES:
        _TEMPLATES[key] = env.get_template(name)
    return _TEMPLATES[key]


@cache
def _environment(directory: Path) -> SandboxedEnvironment:
    env = SandboxedEnvironment(
        loader=jinja2.FileSystemLoader(str(directory)), undefined=jinja2.StrictUndefined,
        trim_blocks=True, lstrip_blocks=True, keep_trailing_newline=True, autoescape=False,
        auto_reload=False,
    )
    env.filters["shell_quote"] = shlex.quote
    env.filters["docker_quote"] = docker_quote
    env.filters["tojson"] = lambda value: json.dumps(value, ensure_ascii=False)
    return env


# --- what depends only on the recipe (cached) -----------------------------------------------


# Recipes hold dicts, so they are not hashable: cache by identity, keeping the recipe alive
# so that its id cannot be reused by another object while the entry exists.
_PER_RECIPE: dict[tuple[str, int], tuple[Recipe, Any]] = {}
_PER_RECIPE_SIZE = 8192


def _per_recipe(kind: str, recipe: Recipe, build: Callable[[Recipe], T]) -> T:
    hit = _PER_RECIPE.get((kind, id(recipe)))
    if hit is not None and hit[0] is recipe:
        return hit[1]  # type: ignore[no-any-return]
    if len(_PER_RECIPE) >= _PER_RECIPE_SIZE:
        _PER_RECIPE.clear()
    value = build(recipe)
    _PER_RECIPE[(kind, id(recipe))] = (recipe, value)
    return value


def _recipe_context(recipe: Recipe) -> dict[str, Any]:
    return _per_recipe("context", recipe, _build_recipe_context)


def _build_recipe_context(recipe: Recipe) -> dict[str, Any]:
    return {
        "hepbuild_version": __version__, "recipe_id": recipe.id,
        "env_docker": [f"{k}={docker_quote(v)}" for k, v in sorted(recipe.env.items())],
        "env_shell": [f"{k}={shlex.quote(v)}" for k, v in sorted(recipe.env.items())],
        "files": [{"src": _context_name(f.src), "dest": f.dest} for f in recipe.files],
        "workdir": recipe.workdir,
        "workdir_quoted": shlex.quote(recipe.workdir) if recipe.workdir else None,
        "steps": [_step(s) for s in recipe.steps],
        "entrypoint": _json(recipe.entrypoint), "cmd": _json(recipe.cmd),
        "runscript": runscript_lines(recipe.entrypoint, recipe.cmd),
        "test": recipe.test.splitlines() if recipe.test else None,
    }


def _json(words: tuple[str, ...] | None) -> str | None:
    """The exec form Docker reads for ENTRYPOINT and CMD."""
    return json.dumps(list(words), ensure_ascii=False) if words else None


def _step(text: str) -> dict[str, Any]:
    lines = text.rstrip("\n").splitlines()
    # A one-line step ending in a backslash would swallow the next Dockerfile line.
    single = len(lines) == 1 and not lines[0].rstrip().endswith("\\")
    return {"lines": lines, "quoted": [single_quote(line) for line in lines], "single": single}


def single_quote(text: str) -> str:
    """Always quoted, unlike shlex.quote, so every line of a step reads the same way."""
    return "'" + text.replace("'", "'\"'\"'") + "'"


def _context_name(src: str) -> str:
    return os.path.normpath(src)


def docker_quote(value: str) -> str:
    """A double-quoted Dockerfile word (ENV, LABEL) whose value is taken literally."""
    escaped = value.replace("\\", "\\\\").replace('"', '\\"').replace("$", "\\$")
    return f'"{escaped}"'


def runscript_lines(entrypoint: tuple[str, ...] | None, cmd: tuple[str, ...] | None) -> list[str]:
    """Docker's ENTRYPOINT/CMD rules as sh: arguments replace CMD and are appended to ENTRYPOINT."""
    ep = " ".join(shlex.quote(w) for w in entrypoint) if entrypoint else ""
    default = " ".join(shlex.quote(w) for w in cmd) if cmd else ""
    if ep and default:
        return [f'if [ "$#" -eq 0 ]; then set -- {default}; fi', f'exec {ep} "$@"']
    if ep:
        return [f'exec {ep} "$@"']
    if default:
        return [f'if [ "$#" -eq 0 ]; then set -- {default}; fi', 'exec "$@"']
    return []


# --- plain Dockerfile recipes -----------------------------------------------------------------


def _render_dockerfile_recipe(cell: Cell, image: str,
                              labels: dict[str, str]) -> tuple[Texts, str]:
    """The Dockerfile as is (BASE_IMAGE set, labels added), its definition and its FROM."""
    from hepbuild import dockerfile  # a late import: only Dockerfile recipes need the parser

    assert cell.recipe.dockerfile is not None
    source = cell.recipe.dockerfile.read_text(encoding="utf-8")
    shown = f"recipes/{cell.recipe.id}/{cell.recipe.dockerfile.name}"
    parsed = dockerfile.parse(source, shown, base_image=image)
    header = (f"# Generated by hepbuild {__version__} for cell {cell.id} from {shown}; "
              "edit that file instead.\n")
    label_lines = " \\\n      ".join(f"{k}={docker_quote(v)}" for k, v in labels.items())
    docker = f"{header}{dockerfile.with_base_arg(source, image).rstrip()}\nLABEL {label_lines}\n"
    definition = dockerfile.to_definition(parsed, labels, header=header)
    return Texts(docker, definition), parsed.from_image


# --- context and content key --------------------------------------------------------------------


def _context_entries(recipe: Recipe) -> list[tuple[str, Path]]:
    """(name in context/, source path) for every file of the recipe, sorted by name."""
    return _per_recipe("entries", recipe, _list_context)


def _list_context(recipe: Recipe) -> list[tuple[str, Path]]:
    if recipe.dockerfile is not None:
        return _tree_entries(recipe.directory, "")
    entries: list[tuple[str, Path]] = []
    for copy in recipe.files:
        name = _context_name(copy.src)
        source = recipe.directory / name
        entries += _tree_entries(source, name) if source.is_dir() else [(name, source)]
    return sorted(set(entries))


def _tree_entries(top: Path, prefix: str) -> list[tuple[str, Path]]:
    found = []
    for current, dirs, names in os.walk(top, followlinks=True):
        dirs.sort()
        for name in names:
            path = Path(current) / name
            rel = path.relative_to(top)
            found.append((str(Path(prefix) / rel) if prefix else str(rel), path))
    return sorted(found)


def _context_digest(recipe: Recipe) -> str:
    """Hashed once per loaded recipe: a Config is a snapshot, load again to see edits."""
    return _per_recipe("digest", recipe, _hash_context)


def _hash_context(recipe: Recipe) -> str:
    parts = []
    for name, path in _context_entries(recipe):
        info = os.stat(path)
        parts.append(f"{name}\0{info.st_mode & 0o7777:o}\0"
                     f"{_file_digest(path, info.st_mtime_ns, info.st_size)}")
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()


@cache
def _file_digest(path: Path, mtime_ns: int, size: int) -> str:
    """sha256 of a file's bytes; mtime and size in the key make an edited file rehash."""
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _content_key(recipe: Recipe, texts: Texts, base_digest: str | None,
                 parent_key: str | None) -> str:
    digest = hashlib.sha256()
    parts = ["hepbuild-content-key-v1", __version__, base_digest or "",
             texts.dockerfile, texts.definition, _context_digest(recipe)]
    if parent_key:
        parts.append("parent:" + parent_key)
    for part in parts:
        digest.update(part.encode("utf-8") + b"\0")
    return "sha256:" + digest.hexdigest()


def _fill_context(recipe: Recipe, context: Path) -> None:
    context.mkdir()
    for name, source in _context_entries(recipe):
        target = context / name
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(source, target)  # follows symlinks; load checked they stay inside


class _staging_dir:  # noqa: N801 - used as a context manager, reads like one
    """A temp dir next to ``final`` that replaces it on success and vanishes on failure."""

    def __init__(self, final: Path) -> None:
        self.final = final
        self.path = Path(tempfile.mkdtemp(prefix=f".{final.name}.", dir=final.parent))

    def __enter__(self) -> Path:
        return self.path

    def __exit__(self, kind: object, value: object, tb: object) -> None:
        if kind is not None:
            shutil.rmtree(self.path, ignore_errors=True)
            return
        old = None
        if self.final.exists():
            old = self.final.with_name(f".{self.final.name}.old.{os.getpid()}")
            os.replace(self.final, old)
        os.replace(self.path, self.final)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)

