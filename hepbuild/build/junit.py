"""One JUnit XML file per build run: each cell's image test is a test case."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Sequence
from pathlib import Path

from hepbuild.build.results import BuiltImage
from hepbuild.files import atomic_write


def junit_tree(images: Sequence[BuiltImage], suite: str = "hepbuild.build") -> ET.ElementTree:
    root = ET.Element("testsuites")
    failures = sum(1 for i in images if i.test_status == "failed" or i.status == "failed")
    skipped = sum(1 for i in images
                  if i.test_status in ("skipped", "none") and i.status != "failed")
    total_time = sum(i.seconds for i in images)
    node = ET.SubElement(root, "testsuite", name=suite, tests=str(len(images)),
                         failures=str(failures), errors="0", skipped=str(skipped),
                         time=f"{total_time:.3f}")
    for image in images:
        node.append(_case(image))
    return ET.ElementTree(root)


def _case(image: BuiltImage) -> ET.Element:
    case = ET.Element("testcase", classname=image.image_key or image.cell_id,
                      name=image.cell_id, time=f"{image.seconds:.3f}")
    if image.status == "failed":
        ET.SubElement(case, "failure", message=image.error or "build failed", type="build")
    elif image.test_status == "failed":
        ET.SubElement(case, "failure", message=image.error or "image test failed", type="test")
    elif image.status == "skipped" or image.test_status in ("skipped", "none"):
        reason = image.error or ("recipe has no test" if image.test_status == "none" else "skipped")
        ET.SubElement(case, "skipped", message=reason)
    ET.SubElement(case, "system-out").text = f"log: {image.log}"
    return case


def write_junit(images: Sequence[BuiltImage], path: Path) -> Path:
    """Write atomically: a reader never sees half a report."""
    tree = junit_tree(images)
    ET.indent(tree)
    root = tree.getroot()
    assert root is not None  # junit_tree always builds a <testsuites> root
    return atomic_write(path, ET.tostring(root, encoding="utf-8", xml_declaration=True))
