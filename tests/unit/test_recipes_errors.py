"""Bad input through the real CLI: exit code, file:line in the message, never a traceback."""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from hepbuild.cli import main

MINIMAL = Path(__file__).resolve().parent.parent / "data" / "recipes" / "minimal"

HELLO = "recipes/demo/hello/recipe.yaml"
CHILD = "recipes/demo/child/recipe.yaml"


def run_cli(root: Path, capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str]:
    code = main(["-C", str(root), *args])
    err = capsys.readouterr().err
    assert "Traceback" not in err
    return code, err


def replace(path: Path, old: str, new: str) -> None:
    text = path.read_text()
    assert old in text
    path.write_text(text.replace(old, new))


def write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")


@pytest.fixture
def project(tmp_path: Path) -> Iterator[Path]:
    cwd = os.getcwd()
    root = tmp_path / "project"
    shutil.copytree(MINIMAL, root, symlinks=True)
    yield root
    os.chdir(cwd)  # -C changes directory


def test_malformed_yaml_names_the_line(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    replace(project / HELLO, 'description: A tiny recipe', 'description: [unclosed')
    code, err = run_cli(project, capsys, "lint")
    assert code == 3
    assert f"{HELLO}:4: not valid YAML" in err


def test_unknown_arch_lists_valid_names(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    replace(project / "matrix.yaml", "arches: [x86_64, arm64]", "arches: [x86_64, sparc64]")
    code, err = run_cli(project, capsys, "matrix")
    assert code == 3
    assert "matrix.yaml:3: unknown architecture 'sparc64'" in err
    assert "use one of: x86, x86_64, arm, arm64" in err


def test_unknown_base_in_recipe(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    replace(project / HELLO, 'version: "1.0"', 'version: "1.0"\nbases: [debian12, sl8]')
    code, err = run_cli(project, capsys, "lint")
    assert code == 3
    assert f"{HELLO}:3: unknown base 'sl8'" in err
    assert "bases in matrix.yaml: el9, debian12" in err


def test_file_escaping_with_dotdot(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    write(project / "recipes/secret.txt", "not for images")
    replace(project / HELLO, "src: files/greeting", "src: ../../secret.txt")
    code, err = run_cli(project, capsys, "render", "--out", str(project / "out"))
    assert code == 3
    assert f"{HELLO}:8: file '../../secret.txt' reaches outside the recipe directory " \
           "(via ..)" in err
    assert not (project / "out").exists()


def test_file_escaping_through_symlink(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    write(project / "outside/shadow", "root:*:")
    (project / "recipes/demo/hello/files/link").symlink_to(project / "outside/shadow")
    replace(project / HELLO, "src: files/greeting", "src: files/link")
    code, err = run_cli(project, capsys, "lint")
    assert code == 3
    assert f"{HELLO}:8: file 'files/link' reaches outside the recipe directory " \
           "(through a symlink)" in err


def test_symlink_inside_a_copied_directory(project: Path,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    write(project / "outside/shadow", "root:*:")
    (project / "recipes/demo/hello/files/link").symlink_to(project / "outside/shadow")
    replace(project / HELLO, "src: files/greeting", "src: files")
    code, err = run_cli(project, capsys, "lint")
    assert code == 3
    assert "files/link is a symlink that reaches outside the recipe directory" in err


def test_template_error_names_template_line(project: Path,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    templates = project / "my-templates"
    write(templates / "Dockerfile.j2", "FROM {{ base_image }}\nRUN echo {{ no_such_value }}\n")
    write(templates / "apptainer.def.j2", "From: {{ base_image }}\n")
    write(templates / "partials/apt.j2", "{% macro install(packages) %}apt-get{% endmacro %}\n")
    replace(project / "matrix.yaml", "version: 1", "version: 1\ntemplates: my-templates")
    code, err = run_cli(project, capsys, "render", "--out", str(project / "out"))
    assert code == 4
    assert "Dockerfile.j2:2: 'no_such_value' is undefined" in err
    assert "demo/hello-debian12-x86_64" in err
    assert not (project / "out" / "demo" / "hello-debian12-x86_64").exists()


def test_depends_on_cycle(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    replace(project / HELLO, 'version: "1.0"', 'version: "1.0"\ndepends_on: demo/child')
    code, err = run_cli(project, capsys, "matrix")
    assert code == 3
    assert "depends_on cycle: demo/child -> demo/hello -> demo/child" in err
    assert f"{CHILD}:3:" in err


def test_unknown_depends_on(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    replace(project / CHILD, "depends_on: demo/hello", "depends_on: demo/hallo")
    code, err = run_cli(project, capsys, "matrix")
    assert code == 3
    assert f"{CHILD}:3: depends_on 'demo/hallo' is not a recipe" in err


def test_every_problem_at_once(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    replace(project / "matrix.yaml", "family: apt", "family: dpkg")
    replace(project / HELLO, "steps:", "stepz:")
    replace(project / CHILD, 'version: "0.1"', "version: 0.1")
    code, err = run_cli(project, capsys, "lint")
    assert code == 3
    assert "3 problems" in err
    assert "matrix.yaml:14: bases.debian12.family: 'dpkg' is not one of ['yum', 'apt']" in err
    assert f"{HELLO}:12: unknown key 'stepz'" in err
    assert f"{CHILD}:2: version: 0.1 is not of type 'string', 'integer'" in err


def test_unknown_profile_is_a_usage_error(project: Path,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    code, err = run_cli(project, capsys, "matrix", "--profile", "staging")
    assert code == 2
    assert "unknown profile 'staging' (from --profile)" in err
    assert "local, production" in err


def test_select_without_match_lists_near_ones(project: Path,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    code, err = run_cli(project, capsys, "matrix", "--select", "demo/helo-debian12-x86_64")
    assert code == 2
    assert "matches no cell" in err
    assert "demo/hello-debian12-x86_64" in err


def test_heredoc_in_dockerfile_recipe(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    write(project / "recipes/demo/plain/Dockerfile",
          "FROM debian:12\nRUN <<EOF\necho hi\nEOF\n")
    code, err = run_cli(project, capsys, "lint")
    assert code == 3
    assert "recipes/demo/plain/Dockerfile:2: RUN with a heredoc is not supported" in err


def test_lint_json_lists_problems(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    replace(project / HELLO, "GREETING: hello world", 'GREETING: "two\\nlines"')
    assert main(["-C", str(project), "lint", "--json"]) == 3
    payload = json.loads(capsys.readouterr().out)
    assert payload["ok"] is False
    assert payload["problems"] == [{
        "file": HELLO, "line": 11, "message": "env GREETING contains a newline or NUL",
        "hint": "Dockerfile ENV and %environment take one line; use a file under files: for "
                "longer text"}]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("a: &x\n  b: *x\n", f"{HELLO}:1: not valid YAML: an alias refers to a node that "
                             "contains it"),
        ("", f"{HELLO}:1: recipe.yaml must be a mapping"),
        ("name: hello\n", f"{HELLO}:1: the top level: 'version' is a required property\n"
                          "    hint: add `version:`"),
        ("name: hello\nversion: '1'\nname: again\n", f"{HELLO}:3: duplicate key 'name'"),
        ("name: hello\nversion: '1'\nfiles: {}\n", f"{HELLO}:3: files: {{}} is not of type "
                                                   "'array'\n    hint: write it as a list"),
    ],
)
def test_odd_yaml_is_a_problem_not_a_crash(project: Path, capsys: pytest.CaptureFixture[str],
                                           text: str, expected: str) -> None:
    (project / HELLO).write_text(text)
    code, err = run_cli(project, capsys, "lint")
    assert code == 3
    assert expected in err


def test_schema_error_does_not_hide_unknown_arches(project: Path,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    replace(project / "matrix.yaml", "arches: [x86_64, arm64]", "arches: [x86_64, 42, sparc]")
    replace(project / HELLO, 'version: "1.0"', 'version: "1.0"\narches: [7, sparc, arm64]')
    code, err = run_cli(project, capsys, "lint")
    assert code == 3
    assert "matrix.yaml:3: arches.1: 42 is not of type 'string'" in err
    assert "matrix.yaml:3: unknown architecture 'sparc'" in err
    assert f"{HELLO}:3: arches.0: 7 is not of type 'string'" in err
    assert f"{HELLO}:3: unknown architecture 'sparc'" in err


def test_schema_error_does_not_hide_file_problems(project: Path,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    replace(project / HELLO, "    dest: /etc/greeting",
            "    dest: relative/dest\n  - src: /etc/shadow\n    dest: /x\n"
            "  - src: ../../secret\n    dest: /y\n  - src: files/missing\n    dest: /z")
    code, err = run_cli(project, capsys, "lint")
    assert code == 3
    assert f"{HELLO}:9: files.0.dest: 'relative/dest' does not match" in err
    assert f"{HELLO}:10: file '/etc/shadow' is an absolute path" in err
    assert f"{HELLO}:12: file '../../secret' reaches outside the recipe directory" in err
    assert f"{HELLO}:14: file 'files/missing' does not exist in the recipe directory" in err
    assert "4 problems" in err


def test_lint_names_the_cell_of_a_missing_partial_once(project: Path,
                                                        capsys: pytest.CaptureFixture[str]) -> None:
    templates = project / "my-templates"
    write(templates / "Dockerfile.j2", "FROM {{ base_image }}\n{{ install }}\n")
    write(templates / "apptainer.def.j2", "From: {{ base_image }}\n")
    replace(project / "matrix.yaml", "version: 1", "version: 1\ntemplates: my-templates")
    code, err = run_cli(project, capsys, "lint", "--profile", "local")
    assert code == 3
    line = next(x for x in err.splitlines() if "partials/apt.j2" in x)
    assert line.strip().startswith("cell demo/hello-debian12-x86_64: template partials/apt.j2 not "
                                   "found")
    assert line.count("demo/hello-debian12-x86_64") == 1
