"""The ``hepbuild sif inspect`` and ``hepbuild convert`` commands, through the real CLI."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from oci_layouts import LayerBlob, LayoutWriter, TarEntry, tar_bytes

from hepbuild.cli import main
from hepbuild.image import sif


def small_sif(tmp_path: Path, arch_code: str = "04") -> Path:
    squash = tmp_path / "root.sqfs"
    squash.write_bytes(b"hsqs" + bytes(4092))
    path = tmp_path / "x.sif"
    sif.SifWriter(timestamp=1_700_000_000).write(path, [
        sif.NewObject(sif.DATA_DEFFILE, b"bootstrap: docker\nfrom: x\n\n"),
        sif.NewObject(sif.DATA_GENERIC_JSON, b"{}", name="oci-config.json"),
        sif.primary_squashfs(squash, arch_code)])
    return path


def test_sif_inspect_json(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["sif", "inspect", str(small_sif(tmp_path)), "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["arch"] == "arm64" and data["platform"] == "linux/arm64/v8"
    assert data["descriptors_free"] == 45
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
    assert result["format"] == "sandbox" and result["arch"] == "x86_64"
    assert result["platform"] == "linux/amd64"
    assert (tmp_path / "sb" / "hello.txt").read_bytes() == b"hi"
    assert (tmp_path / "sb" / ".singularity.d" / "env" / "10-docker2singularity.sh").exists()


def test_convert_bad_reference_is_a_usage_error(tmp_path: Path,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["convert", "image.tar", f"sif:{tmp_path / 'x.sif'}"]) == 2
    assert "cannot read image reference 'image.tar'" in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []


def test_sif_inspect_json_gives_the_centre_arch_name(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = small_sif(tmp_path, "02")
    assert main(["sif", "inspect", str(path), "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["arch"] == "x86_64" and data["platform"] == "linux/amd64"
    assert main(["sif", "inspect", str(path)]) == 0
    assert "Primary Architecture: amd64" in capsys.readouterr().out  # siftool's spelling


def test_convert_table_names_the_centre_arch(tmp_path: Path,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    writer = LayoutWriter(tmp_path / "img")
    writer.add_image("t", [LayerBlob(tar_bytes([TarEntry("f", data=b"x")]))])
    assert main(["convert", f"oci:{tmp_path / 'img'}:t", f"sandbox:{tmp_path / 'sb'}"]) == 0
    out = capsys.readouterr().out
    assert "x86_64" in out and "amd64" not in out


@pytest.mark.parametrize("source", ["oci-archive:{d}/nonexist.tar",
                                    "docker-archive:{d}/nonexist.tar",
                                    "docker-archive:{d}/nonexist.tar:hep/x:1",
                                    "sif:{d}/nonexist.sif", "oci:{d}/nolayout:t",
                                    "sandbox:{d}/nodir"])
def test_convert_names_a_missing_source_first(tmp_path: Path, source: str,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    src = source.format(d=tmp_path)
    dst = f"sif:{tmp_path / 'out.sif'}" if not src.startswith("sif:") else \
        f"sandbox:{tmp_path / 'out'}"
    assert main(["convert", src, dst]) == 2
    err = capsys.readouterr().err
    assert "does not exist" in err and str(tmp_path / "no") in err
    assert "skopeo" not in err and "Traceback" not in err
    assert sorted(p.name for p in tmp_path.iterdir()) == []  # nothing written, no scratch left


def test_retagged_sandbox_layout_has_one_atomic_index(tmp_path: Path) -> None:
    (tmp_path / "sb").mkdir()
    (tmp_path / "sb" / "f").write_text("x")
    assert main(["convert", f"sandbox:{tmp_path / 'sb'}", f"oci:{tmp_path / 'o'}:v1"]) == 0
    index = json.loads((tmp_path / "o" / "index.json").read_text())
    assert [m["annotations"]["org.opencontainers.image.ref.name"]
            for m in index["manifests"]] == ["v1"]
    assert sorted(p.name for p in (tmp_path / "o").iterdir()) == ["blobs", "index.json",
                                                                  "oci-layout"]
