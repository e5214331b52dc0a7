"""Test helpers: OCI image layouts built from layer tars held in memory, and those tars.

Kept out of the package: hepbuild itself writes layouts only through hepbuild.image.oci.
"""

from __future__ import annotations

import gzip
import io
import json
import tarfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import zstandard

from hepbuild.files import sha256_digest
from hepbuild.image import oci
from hepbuild.platforms import get_arch

# An image without an explicit config architecture is an x86_64 one.
DEFAULT_ARCH = get_arch("x86_64").oci


@dataclass(frozen=True)
class LayerBlob:
    """A layer's uncompressed tar and how to store it."""

    tar: bytes
    media_type: str = oci.OCI_LAYER_GZIP
    raw: bytes | None = None  # exact blob bytes, overriding the compression of ``tar``


def compress(tar: bytes, media_type: str) -> bytes:
    kind = oci.LAYER_COMPRESSION.get(media_type, "none")
    if kind == "gzip":
        return gzip.compress(tar, mtime=0)
    if kind == "zstd":
        return zstandard.ZstdCompressor().compress(tar)
    return tar


@dataclass
class LayoutWriter:
    """Add images to one layout directory, each under its own tag."""

    root: Path
    entries: list[dict[str, Any]] = field(default_factory=list)

    def add_image(self, tag: str, layers: Sequence[LayerBlob], config: dict[str, Any] | None
                  = None, platform: dict[str, str] | None = None) -> str:
        descriptors, diff_ids = [], []
        for layer in layers:
            blob = layer.raw if layer.raw is not None else compress(layer.tar, layer.media_type)
            digest, size = oci.write_blob(self.root, blob)
            descriptors.append({"mediaType": layer.media_type, "digest": digest, "size": size})
            diff_ids.append(sha256_digest(layer.tar))
        full_config = {"architecture": DEFAULT_ARCH, "os": "linux", "config": {}}
        full_config.update(config or {})
        full_config["rootfs"] = {"type": "layers", "diff_ids": diff_ids}
        config_digest, config_size = oci.write_blob(self.root, json.dumps(full_config).encode())
        manifest = {"schemaVersion": 2, "mediaType": oci.OCI_MANIFEST,
                    "config": {"mediaType": oci.OCI_CONFIG, "digest": config_digest,
                               "size": config_size}, "layers": descriptors}
        digest, size = oci.write_blob(self.root, json.dumps(manifest).encode())
        entry = oci.index_entry(digest, size, tag, None)
        if platform:
            entry["platform"] = platform  # as given: tests also write odd platform fields
        self.entries.append(entry)
        oci.write_index(self.root, self.entries)
        return digest


@dataclass(frozen=True)
class TarEntry:
    """One member of a layer tar: kind is dir, file, symlink, hardlink, fifo, char or block."""

    name: str
    kind: str = "file"
    data: bytes = b""
    mode: int | None = None
    uid: int = 0
    gid: int = 0
    link: str = ""
    mtime: int = 1_700_000_000
    xattrs: tuple[tuple[str, bytes], ...] = ()
    device: tuple[int, int] = (0, 0)


_KINDS = {"dir": b"5", "file": b"0", "symlink": b"2", "hardlink": b"1", "fifo": b"6",
          "char": b"3", "block": b"4"}


def tar_bytes(entries: Sequence[TarEntry]) -> bytes:
    """A PAX tar with exactly these members in this order (names may be non-UTF-8)."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.PAX_FORMAT, encoding="utf-8",
                      errors="surrogateescape") as tf:
        for entry in entries:
            info = tarfile.TarInfo(entry.name)
            info.type = _KINDS[entry.kind]
            info.mode = entry.mode if entry.mode is not None else (
                0o755 if entry.kind == "dir" else 0o644)
            info.uid, info.gid, info.mtime, info.linkname = (entry.uid, entry.gid, entry.mtime,
                                                             entry.link)
            info.devmajor, info.devminor = entry.device
            info.pax_headers = {f"SCHILY.xattr.{k}": v.decode("utf-8", "surrogateescape")
                                for k, v in entry.xattrs}
            info.size = len(entry.data) if entry.kind == "file" else 0
            tf.addfile(info, io.BytesIO(entry.data) if entry.kind == "file" else None)
    return buffer.getvalue()
