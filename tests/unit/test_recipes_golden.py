"""Golden files: the exact Dockerfile and Apptainer definition of representative cells.

One test per file, compared byte for byte. After an intended change, regenerate with
    HEPBUILD_REGEN_GOLDEN=1 .venv/bin/python -m pytest tests/unit/test_recipes_golden.py
and review the diff before committing it.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from hepbuild.cells import expand_matrix, select_cells
from hepbuild.config.load import load_config
from hepbuild.render import render_texts

REPO = Path(__file__).resolve().parent.parent.parent
GOLDEN = REPO / "tests" / "golden"

# cell id -> the profile it is rendered under; every family, a child and a Dockerfile recipe
CELLS = {
    "base/login-node-sl7-x86_64": "production",  # yum, EOL fix-ups, multi-line step
    "bes/bes-env-sl5-x86_64": "production",  # yum, SL5 (vsyscall base)
    "juno/offline-env-centos7-arm64": "production",  # child recipe on AltArch
    "base/compute-node-debian12-arm64": "local",  # apt, files, test
    "juno/offline-env-debian12-x86_64": "local",  # child recipe, apt
    "monitoring/node-exporter-agent-debian12-arm": "production",  # a directory of files
    "services/nginx-web-debian12-x86_64": "local",  # plain Dockerfile recipe
}
FILES = ("Dockerfile", "apptainer.def")
CASES = [(cell_id, name) for cell_id in CELLS for name in FILES]


def rendered_text(cell_id: str, name: str) -> str:
    config = load_config(REPO, CELLS[cell_id])
    [cell] = select_cells(expand_matrix(config).cells, [cell_id])
    texts = render_texts(config, cell)
    return texts.dockerfile if name == "Dockerfile" else texts.definition


@pytest.mark.parametrize(("cell_id", "name"), CASES, ids=[f"{c}:{n}" for c, n in CASES])
def test_golden(cell_id: str, name: str) -> None:
    path = GOLDEN / cell_id.replace("/", "__") / name
    text = rendered_text(cell_id, name)
    if os.environ.get("HEPBUILD_REGEN_GOLDEN") == "1":
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    assert path.read_text(encoding="utf-8") == text
