"""Build results as plain data, for the summary, --json, JUnit and the release engineer."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Status = Literal["built", "failed", "skipped"]
TestStatus = Literal["passed", "failed", "skipped", "none"]


@dataclass(frozen=True)
class BuiltImage:
    cell_id: str
    local_ref: str  # name in buildah's local store
    pushed_ref: str | None  # registry reference of the per-arch image, once pushed
    digest: str | None  # pushed manifest digest, else the local one
    size: int | None  # bytes, uncompressed layers
    platform: str  # linux/arm64/v8
    log: str  # path of this cell's log file
    seconds: float
    test_status: TestStatus
    content_key: str | None
    base_digest: str | None
    status: Status = "built"
    error: str | None = None  # what went wrong, for failed or skipped cells
    image_key: str = ""  # group/name-base: the multi-arch image this belongs to
    step: str | None = None  # the failing Dockerfile step of a failed build
