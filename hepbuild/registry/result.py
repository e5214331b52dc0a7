"""What a push or pull reports: one row of the summary table, and the ``--json`` document.

JSON keys are snake_case identifiers; ``arch`` is the centre's name (x86_64, arm64, …) and
``platform`` the OCI spelling (linux/amd64) beside it.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from hepbuild.platforms import centre_name


class _Result:
    """What push and pull results share: the centre's arch name filled in from ``platform``."""

    reference: str
    digest: str
    size: int
    platform: str | None
    arch: str | None

    def __post_init__(self) -> None:
        if self.arch is None:
            self.arch = centre_name(self.platform)

    def _row(self, **extra: object) -> dict[str, object]:
        return {"reference": self.reference, "arch": self.arch, "digest": self.digest,
                "size": self.size, **extra}


@dataclass
class PushResult(_Result):
    reference: str
    digest: str
    media_type: str
    size: int  # bytes of every blob and manifest the reference needs
    bytes_uploaded: int  # blob bytes actually sent (0 when everything was there already)
    manifest_size: int = 0
    platform: str | None = None  # linux/arm/v7 style, for a per-arch push
    children: list[PushResult] = field(default_factory=list)
    arch: str | None = None  # the centre's name of ``platform``

    def row(self) -> dict[str, object]:
        return self._row(bytes_uploaded=self.bytes_uploaded)


@dataclass
class PullResult(_Result):
    reference: str
    digest: str  # the manifest's digest
    layer_digest: str
    size: int
    path: str
    platform: str | None = None
    arch: str | None = None  # the centre's name of ``platform``

    def row(self) -> dict[str, object]:
        return self._row(file=self.path)
