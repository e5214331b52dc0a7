"""Benchmark: load + expand + render for 200 synthetic recipes x 5 bases x 4 arches.

    .venv/bin/python bench/matrix/run.py [--recipes 200] [--json]

Generates the project into a temp dir, then times loading it, expanding the matrix,
rendering every cell in memory (render_texts) and once more writing every cell to disk
(render_cell). Reports cells per second; the target is >= 5000 cells/s for the in-memory
render.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from hepbuild.cells import expand_matrix  # noqa: E402
from hepbuild.config.load import load_config  # noqa: E402
from hepbuild.render import render_cell, render_texts  # noqa: E402

ARCHES = ["x86", "x86_64", "arm", "arm64"]
BASES = {"sl6": "yum", "sl7": "yum", "centos7": "yum", "el9": "yum", "debian12": "apt"}


def write_matrix(root: Path) -> None:
    lines = ["version: 1", f"arches: [{', '.join(ARCHES)}]", "default_profile: bench", "bases:"]
    for name, family in BASES.items():
        lines += [f"  {name}:", f"    family: {family}", f"    arches: [{', '.join(ARCHES)}]",
                  "    images:"]
        lines += [f"      {arch}: registry.example.org/{name}:{arch}" for arch in ARCHES]
        lines += ["    repo_fixups: [echo fixup]"] if family == "yum" else []
    lines += ["profiles:", "  bench:", "    registry: {url: 127.0.0.1:5000, insecure: true}"]
    (root / "matrix.yaml").write_text("\n".join(lines) + "\n")


def write_recipe(root: Path, index: int) -> None:
    directory = root / "recipes" / f"group{index % 10}" / f"recipe{index:03d}"
    (directory / "files").mkdir(parents=True)
    (directory / "files" / "conf").write_text(f"setting = {index}\n")
    parent = f"depends_on: group0/recipe{index - index % 10:03d}\n" if index % 10 and \
        index % 7 == 0 else ""
    (directory / "recipe.yaml").write_text(
        f"name: recipe{index:03d}\nversion: \"1.{index}\"\ndescription: synthetic {index}\n"
        "maintainers: [Bench <bench@example.org>]\n"
        "packages:\n  common: [bash, procps]\n  yum: [which]\n  apt: [python3-minimal]\n"
        f"env:\n  INDEX: \"{index}\"\n  LANG: C.UTF-8\n"
        "files:\n  - src: files/conf\n    dest: /etc/bench.conf\n"
        "steps:\n  - echo one\n  - |\n    for i in 1 2; do\n      echo $i\n    done\n"
        f"test: test -f /etc/bench.conf\ncmd: [/bin/bash]\n{parent}"
    )


CPU: dict[str, float] = {}  # CPU seconds per step: fairer than wall time on a busy host


def timed(action: object, name: str = "") -> tuple[object, float]:
    start, cpu = time.perf_counter(), time.process_time()
    result = action()  # type: ignore[operator]
    CPU[name] = time.process_time() - cpu
    return result, time.perf_counter() - start


def run(recipes: int) -> dict[str, float | int]:
    with tempfile.TemporaryDirectory(prefix="hepbuild-bench-") as tmp:
        root = Path(tmp)
        write_matrix(root)
        for index in range(recipes):
            write_recipe(root, index)
        config, load_s = timed(lambda: load_config(root), "load")
        expansion, expand_s = timed(lambda: expand_matrix(config), "expand")
        cells = expansion.cells  # type: ignore[attr-defined]
        _, render_s = timed(lambda: [render_texts(config, c) for c in cells], "render")  # type: ignore[arg-type]
        _, second_s = timed(lambda: [render_texts(config, c) for c in cells])  # type: ignore[arg-type]
        _, disk_s = timed(lambda: [render_cell(config, c, root / "out") for c in cells])  # type: ignore[arg-type]
    return {
        "recipes": recipes, "cells": len(cells), "load_s": round(load_s, 3),
        "expand_s": round(expand_s, 3), "render_texts_s": round(render_s, 3),
        "render_texts_warm_s": round(second_s, 3), "render_disk_s": round(disk_s, 3),
        "cells_per_s_render": round(len(cells) / render_s),
        "cells_per_s_total": round(len(cells) / (load_s + expand_s + render_s)),
        "cells_per_s_disk": round(len(cells) / disk_s),
        "cpu_cells_per_s_render": round(len(cells) / CPU["render"]),
        "cpu_cells_per_s_total": round(len(cells) / (CPU["load"] + CPU["expand"] + CPU["render"])),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--recipes", type=int, default=200)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    result = run(args.recipes)
    if args.json:
        print(json.dumps(result, indent=2, sort_keys=True))
    else:
        print(f"{result['cells']} cells from {result['recipes']} recipes")
        print(f"  load {result['load_s']} s, expand {result['expand_s']} s")
        print(f"  render_texts: {result['cells_per_s_render']} cells/s "
              f"(load+expand+render: {result['cells_per_s_total']} cells/s)")
        print(f"  render_cell to disk: {result['cells_per_s_disk']} cells/s")
        print(f"  by CPU time: render {result['cpu_cells_per_s_render']} cells/s, "
              f"load+expand+render {result['cpu_cells_per_s_total']} cells/s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
