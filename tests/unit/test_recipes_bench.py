"""The matrix benchmark still runs (on a tiny input) and counts the cells it rendered."""

from __future__ import annotations

import runpy
from pathlib import Path

BENCH = Path(__file__).resolve().parent.parent.parent / "bench" / "matrix" / "run.py"


def test_bench_renders_every_cell_of_its_synthetic_matrix() -> None:
    bench = runpy.run_path(str(BENCH), run_name="bench")
    result = bench["run"](3)
    assert result["recipes"] == 3
    assert result["cells"] == 3 * 5 * 4
    assert result["cells_per_s_render"] > 0
