"""Atomic writes and digests."""

from __future__ import annotations

import hashlib
import subprocess
from pathlib import Path

import pytest

from hepbuild.files import atomic_write, file_digests, sha256_digest, write_checksum_files


def test_atomic_write_replaces_whole_and_leaves_no_temp(tmp_path: Path) -> None:
    target = tmp_path / "sub" / "out.json"
    atomic_write(target, "first")
    atomic_write(target, b"second", mode=0o600)
    assert target.read_bytes() == b"second"
    assert target.stat().st_mode & 0o777 == 0o600
    assert sorted(p.name for p in target.parent.iterdir()) == ["out.json"]


def test_a_failed_write_keeps_the_old_file(tmp_path: Path) -> None:
    target = tmp_path / "out.txt"
    atomic_write(target, "old")
    with pytest.raises(TypeError):
        atomic_write(target, 42)  # type: ignore[arg-type]
    assert target.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["out.txt"]


def test_digests_agree_with_hashlib_and_coreutils(tmp_path: Path) -> None:
    blob = tmp_path / "image.sif"
    blob.write_bytes(b"SIF" * 500_000)
    assert sha256_digest(b"{}") == (
        "sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a")
    assert file_digests(blob) == (hashlib.sha256(blob.read_bytes()).hexdigest(),
                                  hashlib.md5(blob.read_bytes()).hexdigest())
    _, _, written = write_checksum_files(blob)
    assert [p.name for p in written] == ["image.sif.sha256", "image.sif.md5"]
    for tool, path in (("sha256sum", written[0]), ("md5sum", written[1])):
        subprocess.run([tool, "-c", path.name], cwd=tmp_path, check=True, capture_output=True)


def test_sha256_file_is_the_oci_digest_of_the_bytes(tmp_path: Path) -> None:
    from hepbuild.files import sha256_file

    blob = tmp_path / "layer"
    blob.write_bytes(b"\0" * (3 << 20) + b"tail")
    assert sha256_file(blob) == sha256_digest(blob.read_bytes())
