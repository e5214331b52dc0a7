"""Our SIF reader against the peer images and siftool's golden listings; writer round trips."""

from __future__ import annotations

import re
import uuid
from pathlib import Path

import pytest

from hepbuild.cli import main
from hepbuild.errors import ImageError
from hepbuild.image import sif

PEERS = Path(__file__).resolve().parents[3] / "shared" / "peers" / "sif"
IMAGES = sorted((PEERS / "images").glob("*.sif"))
GOLDEN = PEERS / "golden"


def image_for(golden_name: str) -> Path:
    """``OneGroupSignedPGP`` -> one-group-signed-pgp.sif (as the peer suite names them)."""
    words = re.findall(r"ID|PGP|DSSE|JSON|OCI|SBOM|[A-Z][a-z]*", golden_name)
    return PEERS / "images" / ("-".join(w.lower() for w in words) + ".sif")


def golden_fields(path: Path) -> list[tuple[str, str]]:
    rows = []
    for line in path.read_text().splitlines():
        key, _, value = line.strip().partition(":")
        rows.append((key.strip(), value.strip()))
    return rows


def all_objects() -> list[tuple[Path, sif.Descriptor]]:
    return [(path, d) for path in IMAGES for d in sif.read_sif(path).descriptors]


pytestmark = pytest.mark.skipif(not IMAGES, reason=f"peer SIF images missing under {PEERS}")


@pytest.mark.parametrize("golden", sorted((GOLDEN / "TestApp_List").glob("*.golden")),
                         ids=lambda p: p.stem)
def test_list_matches_siftool_golden(golden: Path) -> None:
    assert sif.render_list(sif.read_sif(image_for(golden.stem))) == golden.read_text()


@pytest.mark.parametrize("golden", sorted((GOLDEN / "TestApp_Header").glob("*.golden")),
                         ids=lambda p: p.stem)
def test_header_matches_siftool_golden(golden: Path) -> None:
    assert sif.header_fields(sif.read_sif(image_for(golden.stem))) == golden_fields(golden)


@pytest.mark.parametrize("golden", sorted((GOLDEN / "TestApp_Info").glob("*.golden")),
                         ids=lambda p: p.stem)
def test_some_peer_object_has_exactly_the_golden_info(golden: Path) -> None:
    want = golden_fields(golden)
    assert any(d.info_fields() == want for _, d in all_objects())


@pytest.mark.parametrize("golden", sorted((GOLDEN / "TestApp_Dump").glob("*.golden")),
                         ids=lambda p: p.stem)
def test_some_peer_object_has_exactly_the_golden_dump(golden: Path) -> None:
    want = golden.read_bytes()
    assert any(sif.read_sif(p).read_object(d) == want for p, d in all_objects())


@pytest.mark.parametrize("path", IMAGES, ids=lambda p: p.name)
def test_rewrite_keeps_every_object_byte_for_byte(tmp_path: Path, path: Path) -> None:
    original = sif.read_sif(path)
    copy = tmp_path / "copy.sif"
    sif.rewrite_sif(original, copy, {})
    again = sif.read_sif(copy)
    assert sif.render_list(again) == sif.render_list(original)
    for old, new in zip(original.descriptors, again.descriptors, strict=True):
        assert original.read_object(old) == again.read_object(new)
        assert (old.extra, old.name, old.created_at) == (new.extra, new.name, new.created_at)
    assert again.header.id == original.header.id


def test_writer_layout_matches_the_go_library(tmp_path: Path) -> None:
    squash = tmp_path / "root.sqfs"
    squash.write_bytes(b"hsqs" + bytes(4092))
    objects = [sif.NewObject(sif.DATA_DEFFILE, b"bootstrap: docker\nfrom: alpine:3.19\n"),
               sif.NewObject(sif.DATA_LABELS, b'{"a":"b"}'),
               sif.primary_squashfs(squash, "02"),
               sif.NewObject(sif.DATA_GENERIC, b'{"a":"b"}', name="myblob", group_id=0,
                             linked_id=3)]
    out = tmp_path / "t.sif"
    sif.SifWriter(image_id=uuid.UUID(int=1), timestamp=1_700_000_000).write(out, objects)
    image = sif.read_sif(out)
    spans = [(d.id, d.offset, d.offset + d.size) for d in image.descriptors]
    assert spans == [(1, 32176, 32212), (2, 32212, 32221), (3, 32768, 36864), (4, 36864, 36873)]
    assert image.header.arch == "amd64" and image.header.data_size == 36873 - 32176
    assert image.descriptors[2].size_with_padding == 547 + 4096
    assert image.primary_partition() == image.descriptors[2]
    assert image.descriptors[3].group_id == 0 and image.descriptors[3].linked_id == 3


@pytest.mark.parametrize("damage", ["truncate-table", "truncate-data", "magic", "version",
                                    "empty"])
def test_damaged_files_give_a_clear_error(tmp_path: Path, damage: str) -> None:
    out = tmp_path / "t.sif"
    sif.SifWriter().write(out, [sif.NewObject(sif.DATA_DEFFILE, b"x" * 5000)])
    data = bytearray(out.read_bytes())
    if damage == "truncate-table":
        data = data[:5000]
    elif damage == "truncate-data":
        data = data[:-10]
    elif damage == "magic":
        data[32:41] = b"NOT_MAGIC"
    elif damage == "version":
        data[42:44] = b"99"
    else:
        data = bytearray()
    out.write_bytes(bytes(data))
    with pytest.raises(ImageError, match=str(out)):
        sif.read_sif(out)


def test_foreign_file_is_refused(tmp_path: Path) -> None:
    other = tmp_path / "x.tar"
    other.write_bytes(bytes(4096))
    with pytest.raises(ImageError, match="not a SIF file"):
        sif.read_sif(other)


@pytest.mark.parametrize("offset", [64, 72])
def test_sif_inspect_shows_an_impossible_time_raw(tmp_path: Path, offset: int,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "t.sif"
    sif.SifWriter(timestamp=1_700_000_000).write(out, [sif.NewObject(sif.DATA_DEFFILE, b"x")])
    data = bytearray(out.read_bytes())
    data[offset:offset + 8] = (0x7FFF_FFFF_FFFF_FFFF).to_bytes(8, "little")
    out.write_bytes(bytes(data))
    assert main(["sif", "inspect", str(out)]) == 0
    captured = capsys.readouterr()
    assert f"{0x7FFF_FFFF_FFFF_FFFF} (invalid time)" in captured.out
    assert "2023-11-14 22:13:20 +0000 UTC" in captured.out  # the other time is intact
    assert "Traceback" not in captured.err


def test_sif_inspect_names_a_corrupted_descriptor_offset(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "t.sif"
    sif.SifWriter().write(out, [sif.NewObject(sif.DATA_DEFFILE, b"x")])
    data = bytearray(out.read_bytes())
    data[96:104] = (0x7FFF_FFFF_FFFF_FF00).to_bytes(8, "little")
    out.write_bytes(bytes(data))
    assert main(["sif", "inspect", str(out)]) == 8
    err = capsys.readouterr().err
    assert str(out) in err and "corrupted SIF header" in err and "Traceback" not in err
