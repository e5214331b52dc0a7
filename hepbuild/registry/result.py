"""What a push or pull reports: one row of the summary table."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class PushResult:
    reference: str
    digest: str
    media_type: str
    size: int  # bytes of every blob and manifest the reference needs
    bytes_uploaded: int  # blob bytes actually sent (0 when everything was there already)
    manifest_size: int = 0
    platform: str | None = None  # linux/arm/v7 style, for a per-arch push
    children: list[PushResult] = field(default_factory=list)

    def row(self) -> dict[str, object]:
        return {
            "reference": self.reference,
            "digest": self.digest,
            "size": self.size,
            "bytes uploaded": self.bytes_uploaded,
        }


@dataclass
class PullResult:
    reference: str
    digest: str  # the manifest's digest
    layer_digest: str
    size: int
    path: str
    platform: str | None = None

    def row(self) -> dict[str, object]:
        return {
            "reference": self.reference,
            "digest": self.digest,
            "size": self.size,
            "file": self.path,
        }
