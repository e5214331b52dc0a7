"""What a SIF push needs to know about the file: its primary arch and its creation label."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from hepbuild.errors import ImageError
from hepbuild.image import sif

METADATA_NAME = "inspect-metadata.json"
CREATED_LABEL = "org.opencontainers.image.created"
MAX_METADATA = 4 * 1024 * 1024


@dataclass(frozen=True)
class SifSummary:
    arch: str  # Go spelling (amd64, arm64, 386, arm, …) or "unknown"
    # The org.opencontainers.image.created label: "" when the metadata has none, None when
    # the SIF carries no inspect-metadata.json (Apptainer then uses the current time).
    created: str | None


def is_sif(path: Path) -> bool:
    try:
        sif.read_sif(path)
    except ImageError:
        return False
    return True


def read_sif_summary(path: Path) -> SifSummary:
    image = sif.read_sif(path)
    metadata = image.find(sif.DATA_GENERIC_JSON, METADATA_NAME)
    if metadata is None:
        return SifSummary(image.header.arch, None)
    if metadata.size > MAX_METADATA:
        return SifSummary(image.header.arch, "")
    return SifSummary(image.header.arch, _created_label(image.read_object(metadata)))


def _created_label(raw: bytes) -> str:
    try:
        labels = json.loads(raw)["data"]["attributes"]["labels"]
    except (ValueError, KeyError, TypeError):
        return ""
    value = labels.get(CREATED_LABEL) if isinstance(labels, dict) else None
    return str(value) if value else ""
