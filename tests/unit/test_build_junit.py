"""The JUnit report the CI planner reads: one test case per cell."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path

from hepbuild.build.junit import write_junit
from hepbuild.build.results import BuiltImage


def _image(cell: str, status: str = "built", test: str = "passed", error: str | None = None):
    return BuiltImage(cell, f"localhost/{cell}", None, "sha256:1", 10, "linux/amd64",
                      f"build/logs/{cell}.log", 1.5, test, None, None, status=status,  # type: ignore[arg-type]
                      error=error, image_key=cell.rsplit("-", 1)[0])


def test_junit_counts_and_marks_each_cell(tmp_path: Path) -> None:
    images = [
        _image("g/a-debian12-x86_64"),
        _image("g/a-debian12-arm64", test="failed", error="test `false` exited with 1"),
        _image("g/b-debian12-x86_64", status="failed", test="skipped",
               error="failed at step: RUN x"),
        _image("g/c-debian12-x86_64", test="none"),
    ]
    path = write_junit(images, tmp_path / "reports" / "junit.xml")
    suite = ET.parse(path).getroot().find("testsuite")
    assert suite is not None
    assert (suite.get("tests"), suite.get("failures"), suite.get("skipped")) == ("4", "2", "1")
    cases = {c.get("name"): c for c in suite.findall("testcase")}
    assert cases["g/a-debian12-x86_64"].find("failure") is None
    assert cases["g/a-debian12-arm64"].find("failure").get("type") == "test"  # type: ignore[union-attr]
    assert cases["g/b-debian12-x86_64"].find("failure").get("message") == "failed at step: RUN x"  # type: ignore[union-attr]
    assert cases["g/c-debian12-x86_64"].find("skipped") is not None
    assert cases["g/a-debian12-x86_64"].get("classname") == "g/a-debian12"
    assert not list(path.parent.glob(".junit-*"))  # the temp file was renamed away
