"""Writing files so that no half-written output is ever left under its final name, and the
digests hepbuild computes over bytes and files. One place for both."""

from __future__ import annotations

import contextlib
import hashlib
import os
import tempfile
from pathlib import Path

_BLOCK = 1 << 20


def atomic_write(path: Path, data: bytes | str, *, mode: int = 0o644) -> Path:
    """Write ``data`` to a temporary file next to ``path``, then rename it into place."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = data.encode("utf-8") if isinstance(data, str) else data
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as stream:
            stream.write(payload)
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    return path


def sha256_digest(data: bytes) -> str:
    """The OCI digest of ``data``: ``sha256:<hex>``."""
    return "sha256:" + hashlib.sha256(data).hexdigest()


def sha256_file(path: Path) -> str:
    """The OCI digest of a file's bytes, ``sha256:<hex>``, read in 1 MiB blocks."""
    sha = hashlib.sha256()
    with open(path, "rb") as stream:
        while block := stream.read(_BLOCK):
            sha.update(block)
    return "sha256:" + sha.hexdigest()


def file_digests(path: Path) -> tuple[str, str]:
    """sha256 and md5 of a file as plain hex, read once in 1 MiB blocks."""
    sha, md5 = hashlib.sha256(), hashlib.md5(usedforsecurity=False)
    with open(path, "rb") as stream:
        while block := stream.read(_BLOCK):
            sha.update(block)
            md5.update(block)
    return sha.hexdigest(), md5.hexdigest()


def write_checksum_files(path: Path) -> tuple[str, str, list[Path]]:
    """``FILE.sha256`` and ``FILE.md5`` beside ``path``, in the format ``sha256sum -c`` reads."""
    path = Path(path)
    sha, md5 = file_digests(path)
    written = [
        atomic_write(path.with_name(f"{path.name}.{kind}"), f"{value}  {path.name}\n")
        for kind, value in (("sha256", sha), ("md5", md5))
    ]
    return sha, md5, written
