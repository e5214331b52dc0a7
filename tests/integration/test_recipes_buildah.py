"""A rendered Dockerfile really builds with buildah and gives the image its recipe asks for.

The base is a two-megabyte image made from the host's busybox-static, in a private vfs store
under tmp_path, so the test touches no shared container storage and no network.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

from hepbuild.cells import expand_matrix, select_cells
from hepbuild.config.load import load_config
from hepbuild.render import render_cell

pytestmark = [pytest.mark.buildah, pytest.mark.root]

MINIMAL = Path(__file__).resolve().parent.parent / "data" / "recipes" / "minimal"
BASE = "localhost/hepbuild-test/busybox:recipes"
RECIPE = """name: hello
version: "1.0"
description: built by buildah in a test
files:
  - src: files/greeting
    dest: /etc/greeting
env:
  D1: $(date)
  BOB: Hello$n"Bob
  SLASH: 'a\\b'
  SPACES: two  spaces
labels:
  org.example.team: tests
workdir: /work
steps:
  - |
    for word in 'a b' "c'd"; do
        printf '[%s]\\n' "$word" >> /work/out
    done
  - echo "$BOB" >> /work/out
cmd: [cat, /etc/greeting]
"""


class Store:
    def __init__(self, root: Path) -> None:
        self.argv = ["buildah", "--root", str(root / "root"), "--runroot", str(root / "run"),
                     "--storage-driver", "vfs"]

    def __call__(self, *args: str) -> str:
        done = subprocess.run([*self.argv, *args], capture_output=True, text=True)
        assert done.returncode == 0, done.stderr
        return done.stdout.strip()


@pytest.fixture
def store(tmp_path: Path) -> Store:
    buildah = Store(tmp_path / "store")
    container = buildah("from", "scratch")
    buildah("copy", container, shutil.which("busybox") or "/bin/busybox", "/bin/busybox")
    buildah("run", "--isolation", "chroot", container, "/bin/busybox", "--install", "-s", "/bin")
    buildah("commit", "-q", container, BASE)
    return buildah


def test_rendered_dockerfile_builds_and_means_what_the_recipe_says(tmp_path: Path,
                                                                    store: Store) -> None:
    root = tmp_path / "project"
    shutil.copytree(MINIMAL, root)
    (root / "recipes/demo/hello/recipe.yaml").write_text(RECIPE)
    matrix = root / "matrix.yaml"
    matrix.write_text(matrix.read_text().replace(
        "    bases_enabled: [debian12]\n",
        f"    bases_enabled: [debian12]\n    bases:\n      debian12: {{x86_64: {BASE}}}\n"))
    config = load_config(root)
    [cell] = select_cells(expand_matrix(config).cells, ["demo/hello-debian12-x86_64"])
    rendered = render_cell(config, cell, tmp_path / "out")

    store("build", "--isolation", "chroot", "--pull=never", "-f", str(rendered.dockerfile),
          "-t", "localhost/hepbuild-test/hello:1", str(rendered.context_dir))
    image = json.loads(store("inspect", "--type", "image", "localhost/hepbuild-test/hello:1"))
    oci = image["OCIv1"]["config"]
    env = dict(item.split("=", 1) for item in oci["Env"])
    assert {k: env[k] for k in ("D1", "BOB", "SLASH", "SPACES")} == {
        "D1": "$(date)", "BOB": 'Hello$n"Bob', "SLASH": "a\\b", "SPACES": "two  spaces"}
    labels = {k: v for k, v in oci["Labels"].items() if k != "io.buildah.version"}
    assert labels == rendered.labels
    assert oci["WorkingDir"] == "/work"
    assert oci["Cmd"] == ["cat", "/etc/greeting"]

    container = store("from", "localhost/hepbuild-test/hello:1")
    assert store("run", "--isolation", "chroot", container, "cat", "/work/out") == \
        "[a b]\n[c'd]\nHello$n\"Bob"
    assert store("run", "--isolation", "chroot", container, "cat", "/etc/greeting") == \
        "hello from hepbuild"
