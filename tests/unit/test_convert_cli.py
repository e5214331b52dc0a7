"""The ``hepbuild sif inspect`` and ``hepbuild convert`` commands, through the real CLI."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from hepbuild.cli import main
from hepbuild.image import sif
from hepbuild.image.layout import LayerBlob, LayoutWriter, TarEntry, tar_bytes


def small_sif(tmp_path: Path) -> Path:
    squash = tmp_path / "root.sqfs"
    squash.write_bytes(b"hsqs" + bytes(4092))
    path = tmp_path / "x.sif"
    sif.SifWriter(timestamp=1_700_000_000).write(path, [
        sif.NewObject(sif.DATA_DEFFILE, b"bootstrap: docker\nfrom: x\n\n"),
        sif.NewObject(sif.DATA_GENERIC_JSON, b"{}", name="oci-config.json"),
        sif.primary_squashfs(squash, "04")])
    return path


def test_sif_inspect_json(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["sif", "inspect", str(small_sif(tmp_path)), "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["arch"] == "arm64" and data["descriptors_free"] == 45
    assert [o["type"] for o in data["objects"]] == ["Def.FILE", "JSON.Generic", "FS"]
    assert data["objects"][1]["name"] == "oci-config.json"
    assert data["objects"][2]["fields"]["Partition Type"] == "*System"
    assert data["objects"][2]["offset"] % 4096 == 0


def test_sif_inspect_text(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["sif", "inspect", str(small_sif(tmp_path))]) == 0
    out = capsys.readouterr().out
    assert "Primary Architecture: arm64" in out and "FS (Squashfs/*System/arm64)" in out


def test_sif_inspect_refuses_other_files(tmp_path: Path,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    other = tmp_path / "notes.txt"
    other.write_text("hello" * 100)
    assert main(["sif", "inspect", str(other)]) == 8
    assert "is not a SIF file" in capsys.readouterr().err


def test_convert_json_to_sandbox(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    writer = LayoutWriter(tmp_path / "img")
    writer.add_image("t", [LayerBlob(tar_bytes([TarEntry("hello.txt", data=b"hi")]))])
    code = main(["convert", f"oci:{tmp_path / 'img'}:t", f"sandbox:{tmp_path / 'sb'}",
                 "--arch", "x86_64", "--json"])
    assert code == 0
    result = json.loads(capsys.readouterr().out)
    assert result["format"] == "sandbox" and result["arch"] == "amd64"
    assert (tmp_path / "sb" / "hello.txt").read_bytes() == b"hi"
    assert (tmp_path / "sb" / ".singularity.d" / "env" / "10-docker2singularity.sh").exists()


def test_convert_bad_reference_is_a_usage_error(tmp_path: Path,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["convert", "image.tar", f"sif:{tmp_path / 'x.sif'}"]) == 2
    assert "cannot read image reference 'image.tar'" in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []
