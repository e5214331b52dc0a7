"""The pure parts of the main job: pinned base digests, the verdict, swapping outputs in."""

from __future__ import annotations

from pathlib import Path

from hepbuild.build import pipeline
from hepbuild.build.results import BuiltImage

DIGEST = "sha256:" + "ab" * 32


def _image(cell: str, status: str = "built", test: str = "passed", **extra: object) -> BuiltImage:
    log = str(extra.pop("log", "x.log"))
    return BuiltImage(cell, "localhost/x", None, None, None, "linux/amd64", log, 1.0,
                      test, None, None, status=status, **extra)  # type: ignore[arg-type]


def test_a_pinned_base_needs_no_registry_lookup() -> None:
    ref = f"harbor.example/base/debian:12@{DIGEST}"
    assert pipeline.base_digest_of(ref, tls_verify=True, authfile=None) == DIGEST


def test_first_failure_names_the_cell_the_step_and_the_log_tail(tmp_path: Path) -> None:
    log = tmp_path / "g__a.log"
    log.write_text("STEP 2/2: RUN false\nError: building at STEP \"RUN false\": exit status 1\n")
    images = [_image("g/ok-b-x86_64"),
              _image("g/a-b-x86_64", "failed", "skipped", log=str(log),
                     step="STEP 2/2: RUN false (exit status 1)"),
              _image("g/c-b-arm64", test="failed", error="test `false` exited with 1")]
    error = pipeline.first_failure(images)
    assert error is not None and error.exit_code == 7
    step = "STEP 2/2: RUN false (exit status 1)"
    assert error.message == f"cell g/a-b-x86_64 failed at step: {step} (log: {log})"
    assert "exit status 1" in error.tail
    assert "1 more cell(s) failed" in (error.hint or "")


def test_a_failed_test_is_a_failure_too() -> None:
    error = pipeline.first_failure([_image("g/c-b-arm64", test="failed",
                                           error="test `false` exited with 1")])
    assert error is not None and error.step == "test `false` exited with 1"


def test_all_good_is_no_failure() -> None:
    assert pipeline.first_failure([_image("g/a"), _image("g/b", test="none")]) is None


def test_replace_swaps_a_directory_or_a_file(tmp_path: Path) -> None:
    old_dir, new_dir = tmp_path / "x.sandbox", tmp_path / ".x.sandbox.new"
    (old_dir / "old").mkdir(parents=True)
    (new_dir / "new").mkdir(parents=True)
    pipeline._replace(new_dir, old_dir)
    assert [p.name for p in old_dir.iterdir()] == ["new"] and not new_dir.exists()

    old_file, new_file = tmp_path / "x.sif", tmp_path / ".x.sif.new"
    old_file.write_text("old")
    new_file.write_text("new")
    pipeline._replace(new_file, old_file)
    assert old_file.read_text() == "new" and not new_file.exists()


def test_layout_paths(tmp_path: Path) -> None:
    layout = pipeline.Layout(tmp_path)
    assert layout.junit_path == tmp_path / "build" / "reports" / "junit.xml"
    assert layout.logs_dir == tmp_path / "build" / "logs"
    assert layout.dist_dir == tmp_path / "dist"
