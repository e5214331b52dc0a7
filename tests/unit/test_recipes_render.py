"""Rendering: deterministic texts, the context, the content key, atomic writes, and the
Dockerfile and definition meaning the same (checked by reading our Dockerfile back)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from hepbuild import render
from hepbuild.cells import expand_matrix, select_cells
from hepbuild.config.load import load_config
from hepbuild.config.model import Cell, Config
from hepbuild.dockerfile import instructions, parse
from hepbuild.render import KEY_LABEL, render_cell, render_texts

REPO = Path(__file__).resolve().parent.parent.parent
MINIMAL = REPO / "tests" / "data" / "recipes" / "minimal"
DIGEST = "sha256:" + "ab" * 32


@pytest.fixture
def project(tmp_path: Path) -> Path:
    root = tmp_path / "project"
    shutil.copytree(MINIMAL, root)
    return root


def cell_of(config: Config, pattern: str) -> Cell:
    [cell] = select_cells(expand_matrix(config).cells, [pattern])
    return cell


def all_cells(profile: str) -> list[tuple[Config, Cell]]:
    config = load_config(REPO, profile)
    return [(config, cell) for cell in expand_matrix(config).cells]


def section(text: str, name: str) -> str:
    return text.split(f"%{name}\n", 1)[1].split("\n%", 1)[0]


def test_render_is_byte_identical_across_runs(project: Path, tmp_path: Path) -> None:
    config = load_config(project)
    cell = cell_of(config, "demo/hello-debian12-x86_64")
    first = render_cell(config, cell, tmp_path / "a")
    second = render_cell(load_config(project), cell, tmp_path / "b")
    assert first.content_key == second.content_key
    for name in ("Dockerfile", "apptainer.def", "context/files/greeting"):
        assert (first.directory / name).read_bytes() == (second.directory / name).read_bytes()


def test_render_cell_writes_cell_directory(project: Path, tmp_path: Path) -> None:
    config = load_config(project)
    cell = cell_of(config, "demo/hello-debian12-arm64")
    rendered = render_cell(config, cell, tmp_path / "out")
    assert rendered.directory == tmp_path / "out" / "demo" / "hello-debian12-arm64"
    texts = render_texts(config, cell)
    assert rendered.dockerfile.read_text() == texts.dockerfile
    assert rendered.definition.read_text() == texts.definition
    assert (rendered.context_dir / "files/greeting").read_text() == "hello from hepbuild\n"
    assert rendered.base_image == "registry.example.org/debian:12-arm64"
    assert rendered.templates == ("templates/Dockerfile.j2", "templates/apptainer.def.j2",
                                  "templates/partials/apt.j2")
    assert rendered.labels[KEY_LABEL] == rendered.content_key
    assert rendered.labels["org.hepbuild.cell"] == "demo/hello-debian12-arm64"
    assert "org.opencontainers.image.created" not in rendered.labels
    assert f'LABEL {KEY_LABEL}="{rendered.content_key}"\n' in texts.dockerfile
    assert f"    {KEY_LABEL} {rendered.content_key}\n" in section(texts.definition, "labels")


def test_rerender_replaces_the_old_directory(project: Path, tmp_path: Path) -> None:
    config = load_config(project)
    cell = cell_of(config, "demo/hello-debian12-x86_64")
    rendered = render_cell(config, cell, tmp_path)
    (rendered.context_dir / "stale").write_text("left over")
    render_cell(config, cell, tmp_path)
    assert not (rendered.context_dir / "stale").exists()
    assert sorted(p.name for p in (tmp_path / "demo").iterdir()) == ["hello-debian12-x86_64"]


def test_failed_render_leaves_nothing(project: Path, tmp_path: Path,
                                      monkeypatch: pytest.MonkeyPatch) -> None:
    config = load_config(project)
    cell = cell_of(config, "demo/hello-debian12-x86_64")

    def broken_copy(*args: object, **kwargs: object) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(render.shutil, "copy2", broken_copy)
    with pytest.raises(OSError, match="disk full"):
        render_cell(config, cell, tmp_path)
    assert list((tmp_path / "demo").iterdir()) == []


@pytest.mark.parametrize("change", ["bytes", "mode", "digest", "recipe"])
def test_content_key_follows_every_input(project: Path, change: str) -> None:
    config = load_config(project)
    cell = cell_of(config, "demo/hello-debian12-x86_64")
    before = render.content_key_of(config, cell)
    greeting = project / "recipes/demo/hello/files/greeting"
    digest = None
    if change == "bytes":
        greeting.write_text("hello from hepbuild!\n")
    elif change == "mode":
        greeting.chmod(0o755)
    elif change == "digest":
        digest = DIGEST
    else:
        recipe = project / "recipes/demo/hello/recipe.yaml"
        recipe.write_text(recipe.read_text().replace("hello world", "hello there"))
    config = load_config(project)
    after = render.content_key_of(config, cell_of(config, "demo/hello-debian12-x86_64"), digest)
    assert after != before


def test_base_digest_pins_the_from_line(project: Path) -> None:
    config = load_config(project)
    texts = render_texts(config, cell_of(config, "demo/hello-debian12-x86_64"), DIGEST)
    assert f"FROM registry.example.org/debian:12@{DIGEST}\n" in texts.dockerfile
    assert f"From: registry.example.org/debian:12@{DIGEST}\n" in texts.definition


def test_child_builds_from_parent_image(project: Path) -> None:
    config = load_config(project, "production")
    texts = render_texts(config, cell_of(config, "demo/child-el9-x86_64"))
    assert "FROM harbor.example.org/hep/demo/hello:1.0-el9-x86_64\n" in texts.dockerfile


def test_yum_family_gets_fixups_before_packages(project: Path) -> None:
    config = load_config(project, "production")
    texts = render_texts(config, cell_of(config, "demo/hello-el9-x86_64"))
    assert "RUN set -e; \\\n    echo fixup && \\\n    yum -y install bash && \\\n" in \
        texts.dockerfile
    post = section(texts.definition, "post")
    assert post.index("echo fixup") < post.index("yum -y install bash") < post.index("cat /etc")


HOSTILE = {"D1": "$(date)", "D2": "`date`", "FOO": "BAR BAZ", "BOB": 'Hello$n"Bob',
           "EMPTY": "", "SLASH": "a\\b\\", "QUOTE": "it's"}


def test_hostile_env_values_survive_both_formats(project: Path, tmp_path: Path) -> None:
    recipe = project / "recipes/demo/hello/recipe.yaml"
    lines = "".join(f"  {k}: '{v.replace(chr(39), chr(39) * 2)}'\n" for k, v in HOSTILE.items())
    recipe.write_text(recipe.read_text().replace("  GREETING: hello world\n", lines))
    config = load_config(project)
    texts = render_texts(config, cell_of(config, "demo/hello-debian12-x86_64"))
    assert parse(texts.dockerfile, "Dockerfile").environment == HOSTILE
    printer = "; ".join(f'printf "%s\\n" "${k}"' for k in HOSTILE)
    script = section(texts.definition, "environment") + "\n" + printer
    out = subprocess.run(["sh", "-c", script], capture_output=True, text=True, check=True)
    assert out.stdout.splitlines() == list(HOSTILE.values())


@pytest.mark.parametrize("profile", ["local", "production"])
def test_dockerfile_and_definition_mean_the_same(profile: str) -> None:
    """Read each generated Dockerfile back with our Dockerfile parser and compare with the
    definition rendered for the same cell: environment, labels, files, runscript."""
    from hepbuild.dockerfile import to_definition

    for config, cell in all_cells(profile):
        texts = render_texts(config, cell)
        parsed = parse(texts.dockerfile, cell.id)
        derived = to_definition(parsed, {})
        if cell.recipe.dockerfile is None:
            assert parsed.environment == cell.recipe.env, cell.id
        for name in ("environment", "labels", "runscript"):
            if f"%{name}\n" in derived:
                assert section(derived, name) == section(texts.definition, name), (cell.id, name)
        if parsed.files:
            assert section(derived, "files") == section(texts.definition, "files"), cell.id


STEP = """steps:
  - |
    for word in 'a b' "c'd"; do
        printf '[%s]\\n' "$word" >> OUT
    done
    # a comment line in the middle of a step
    echo "$GREETING" >> OUT
  - echo single >> OUT
"""


def test_multi_line_steps_run_the_same_in_both_formats(project: Path, tmp_path: Path) -> None:
    recipe = project / "recipes/demo/hello/recipe.yaml"
    text = recipe.read_text()
    steps = text[text.index("steps:"): text.index("test:")]
    recipe.write_text(text.replace(steps, STEP))
    config = load_config(project)
    texts = render_texts(config, cell_of(config, "demo/hello-debian12-x86_64"))
    docker_out, def_out = tmp_path / "docker", tmp_path / "def"
    env = {"PATH": "/usr/bin:/bin", "GREETING": "hello world"}
    runs = [i.text for i in instructions(texts.dockerfile) if i.keyword == "RUN"][1:]
    for command in runs:  # as Docker runs shell-form RUN: /bin/sh -c <joined line>
        subprocess.run(["/bin/sh", "-c", command.replace("OUT", str(docker_out))], env=env,
                       check=True)
    post = section(texts.definition, "post")
    steps_only = post[post.index("for word"):]
    subprocess.run(["/bin/sh", "-ec", steps_only.replace("OUT", str(def_out))], env=env,
                   check=True)
    expected = "[a b]\n[c'd]\nhello world\nsingle\n"
    assert docker_out.read_text() == expected
    assert def_out.read_text() == expected


def test_dockerfile_only_recipe_directory(project: Path, tmp_path: Path) -> None:
    plain = project / "recipes/demo/plain"
    plain.mkdir()
    (plain / "Dockerfile").write_text(
        "ARG BASE_IMAGE=debian:12\nFROM $BASE_IMAGE\nCOPY tool.sh /usr/local/bin/\n"
        'CMD ["tool.sh"]\n')
    (plain / "tool.sh").write_text("#!/bin/sh\necho tool\n")
    config = load_config(project)
    rendered = render_cell(config, cell_of(config, "demo/plain-debian12-arm64"), tmp_path)
    docker = rendered.dockerfile.read_text()
    assert docker.splitlines()[1:3] == ["ARG BASE_IMAGE=registry.example.org/debian:12-arm64",
                                        "FROM $BASE_IMAGE"]
    assert 'org.opencontainers.image.version="0"' in docker
    assert rendered.base_image == "registry.example.org/debian:12-arm64"
    assert rendered.templates == ()
    assert sorted(p.name for p in rendered.context_dir.iterdir()) == ["Dockerfile", "tool.sh"]
    definition = rendered.definition.read_text()
    assert "From: registry.example.org/debian:12-arm64\n" in definition
    assert "    tool.sh /usr/local/bin/tool.sh\n" in section(definition, "files")
    assert section(definition, "runscript") == (
        '    if [ "$#" -eq 0 ]; then set -- tool.sh; fi\n    exec "$@"\n')


@pytest.mark.parametrize("change", ["parent recipe", "parent base digest"])
def test_a_changed_parent_changes_the_child_key(project: Path, change: str) -> None:
    from hepbuild.build.pipeline import parent_key_of

    def key_of_child(digest: str) -> str:
        config = load_config(project, "production")
        child = cell_of(config, "demo/child-el9-x86_64")
        parent_key = parent_key_of(config, child, lambda _config, _cell: digest)
        assert parent_key is not None
        return render.content_key_of(config, child, parent_key=parent_key)

    before = key_of_child(DIGEST)
    if change == "parent recipe":
        recipe = project / "recipes/demo/hello/recipe.yaml"
        recipe.write_text(recipe.read_text().replace("hello world", "hello there"))
        after = key_of_child(DIGEST)
    else:
        after = key_of_child("sha256:" + "cd" * 32)
    assert after != before
    # Same inputs, same key: the parent key is deterministic.
    assert key_of_child(DIGEST) == key_of_child(DIGEST)


def test_a_root_cell_has_no_parent_key(project: Path) -> None:
    from hepbuild.build.pipeline import parent_key_of

    config = load_config(project, "production")
    cell = cell_of(config, "demo/hello-el9-x86_64")
    assert parent_key_of(config, cell, lambda _config, _cell: DIGEST) is None
