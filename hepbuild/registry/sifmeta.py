"""What a push needs from a SIF: is it one, its primary arch, its creation label.

A small reader of the global header and descriptor table (FORMATS.md §1), kept here until the
image engineer's SIF module is available to the registry code.
"""

from __future__ import annotations

import json
import struct
from dataclasses import dataclass
from pathlib import Path

from hepbuild.errors import ImageError
from hepbuild.platforms import arch_from_sif_code

MAGIC = b"SIF_MAGIC\0"
HEADER_SIZE = 128
DESCRIPTOR_SIZE = 585
DATA_GENERIC_JSON = 0x4006
METADATA_NAME = "inspect-metadata.json"
CREATED_LABEL = "org.opencontainers.image.created"
MAX_METADATA = 4 * 1024 * 1024


@dataclass(frozen=True)
class SifSummary:
    arch: str  # Go spelling: amd64, arm64, 386, arm, … or "unknown"
    # The org.opencontainers.image.created label; "" when the metadata has none, None when
    # the SIF carries no inspect-metadata.json (Apptainer then uses the current time).
    created: str | None


def is_sif(path: Path) -> bool:
    with open(path, "rb") as fh:
        head = fh.read(HEADER_SIZE)
    return len(head) == HEADER_SIZE and head[32:42] == MAGIC


def read_sif_summary(path: Path) -> SifSummary:
    with open(path, "rb") as fh:
        head = fh.read(HEADER_SIZE)
        if len(head) < HEADER_SIZE or head[32:42] != MAGIC:
            raise ImageError(
                f"{path} is not a SIF file (no SIF_MAGIC in its header)",
                "build one with `hepbuild convert ... sif:FILE`",
            )
        arch = arch_from_sif_code(head[45:47].decode("ascii", "replace"))
        total, offset = struct.unpack_from("<qq", head, 88)
        created = _created_label(fh, total, offset)
    return SifSummary(arch, created)


def _created_label(fh, total: int, offset: int) -> str | None:  # noqa: ANN001
    if not 0 < total <= 4096 or offset < HEADER_SIZE:
        return None
    fh.seek(offset)
    table = fh.read(total * DESCRIPTOR_SIZE)
    for index in range(len(table) // DESCRIPTOR_SIZE):
        raw = table[index * DESCRIPTOR_SIZE : (index + 1) * DESCRIPTOR_SIZE]
        data_type, used = struct.unpack_from("<iB", raw, 0)
        name = raw[73:201].split(b"\0", 1)[0].decode("utf-8", "replace")
        if used and data_type == DATA_GENERIC_JSON and name == METADATA_NAME:
            obj_offset, size = struct.unpack_from("<qq", raw, 17)
            return _label_from_metadata(fh, obj_offset, size)
    return None


def _label_from_metadata(fh, offset: int, size: int) -> str | None:  # noqa: ANN001
    if not 0 < size <= MAX_METADATA:
        return ""
    fh.seek(offset)
    try:
        document = json.loads(fh.read(size))
        labels = document["data"]["attributes"]["labels"]
    except (ValueError, KeyError, TypeError):
        return ""
    value = labels.get(CREATED_LABEL) if isinstance(labels, dict) else None
    return str(value) if value else ""
