"""The versions of one image as the registry holds them: dated tags, moving tags, records."""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass

from hepbuild.errors import UsageError
from hepbuild.naming import tag_safe
from hepbuild.platforms import arch_names
from hepbuild.release.records import (
    ROLLBACK_RECORD_TYPE,
    BuildRecord,
    find_build_records,
    list_referrers,
    read_referrer_payload,
)
from hepbuild.release.store import Manifest, ManifestStore

_STAMP = r"\d{8}T\d{6}Z"


@dataclass(frozen=True)
class TagScheme:
    """How the tags of one image (one recipe on one base) are spelled, see ``naming``."""

    base: str

    @property
    def latest(self) -> str:
        return tag_safe(f"{self.base}-latest")

    def dated_version(self, tag: str) -> str | None:
        match = re.fullmatch(rf"(.+)-{re.escape(self.base)}-({_STAMP})", tag)
        return match.group(1) if match else None

    def moving_version(self, tag: str) -> str | None:
        match = re.fullmatch(rf"(.+)-{re.escape(self.base)}", tag)
        return match.group(1) if match else None

    def is_arch_tag(self, tag: str) -> bool:
        return any(tag.endswith(f"-{self.base}-{arch}") for arch in arch_names())

    def version_of(self, tag: str) -> str:
        """The version a dated or version tag belongs to; other tags are refused."""
        version = self.dated_version(tag) or self.moving_version(tag)
        if version is None or self.is_arch_tag(tag) or tag == self.latest:
            raise UsageError(
                f"{tag!r} is not a version of this image",
                f"name a dated tag (<version>-{self.base}-<YYYYmmddTHHMMSSZ>) "
                f"or a version tag (<version>-{self.base})",
            )
        return version


@dataclass(frozen=True)
class RecordInfo:
    cell_id: str
    recipe_commit: str | None
    builder: str
    build_time: str


@dataclass(frozen=True)
class RollbackInfo:
    user: str
    reason: str
    time: str


@dataclass(frozen=True)
class VersionRow:
    tag: str
    version: str
    built: str | None  # the dated tag's time stamp, ISO 8601
    digest: str
    moving: tuple[str, ...]  # moving tags that point at the same manifest
    platforms: tuple[str, ...]
    records: tuple[RecordInfo, ...]
    rollbacks: tuple[RollbackInfo, ...] = ()  # rollbacks that moved tags here


@dataclass(frozen=True)
class History:
    repository: str
    versions: tuple[VersionRow, ...]
    moving: dict[str, str]  # moving tag -> digest

    def available(self) -> list[str]:
        return [row.tag for row in self.versions]


def read_history(store: ManifestStore, repository: str, scheme: TagScheme) -> History:
    tags = store.list_tags(repository)
    moving_names = [t for t in tags if _is_moving(scheme, t)]
    dated_names = [t for t in tags if scheme.dated_version(t)]
    manifests = {t: store.find_manifest(repository, t) for t in moving_names + dated_names}
    moving = {t: m.digest for t, m in manifests.items() if m and t in moving_names}
    rows = [
        _row(store, repository, scheme, tag, manifest, moving)
        for tag in dated_names
        if (manifest := manifests[tag]) is not None
    ]
    rows.sort(key=lambda r: (r.built or "", r.tag), reverse=True)
    rows += _untracked_moving(store, repository, scheme, manifests, moving, rows)
    return History(repository, tuple(rows), moving)


def _is_moving(scheme: TagScheme, tag: str) -> bool:
    if tag == scheme.latest:
        return True
    return scheme.moving_version(tag) is not None and not scheme.is_arch_tag(tag) \
        and scheme.dated_version(tag) is None


def _row(
    store: ManifestStore, repository: str, scheme: TagScheme, tag: str, manifest: Manifest,
    moving: dict[str, str],
) -> VersionRow:
    version = scheme.dated_version(tag) or scheme.moving_version(tag) or "?"
    stamp = re.search(_STAMP + "$", tag)
    return VersionRow(
        tag=tag,
        version=version,
        built=_iso(stamp.group(0)) if stamp else None,
        digest=manifest.digest,
        moving=tuple(sorted(t for t, d in moving.items() if d == manifest.digest)),
        platforms=_platforms(manifest),
        records=_records(store, repository, manifest),
        rollbacks=_rollbacks(store, repository, manifest),
    )


def _untracked_moving(
    store: ManifestStore, repository: str, scheme: TagScheme,
    manifests: dict[str, Manifest | None], moving: dict[str, str], rows: Sequence[VersionRow],
) -> list[VersionRow]:
    """Moving tags whose manifest no dated tag holds (pushed by hand, or before hepbuild)."""
    shown = {r.digest for r in rows}
    extra: list[VersionRow] = []
    for tag in sorted(moving):
        manifest = manifests[tag]
        if manifest is not None and manifest.digest not in shown and tag != scheme.latest:
            extra.append(_row(store, repository, scheme, tag, manifest, moving))
            shown.add(manifest.digest)
    return extra


def _iso(stamp: str) -> str:
    return f"{stamp[0:4]}-{stamp[4:6]}-{stamp[6:8]}T{stamp[9:11]}:{stamp[11:13]}:{stamp[13:15]}Z"


def _platforms(manifest: Manifest) -> tuple[str, ...]:
    document = json.loads(manifest.data)
    found = []
    for entry in document.get("manifests") or []:
        platform = entry.get("platform") or {}
        parts = [platform.get("os"), platform.get("architecture"), platform.get("variant")]
        found.append("/".join(p for p in parts if p))
    return tuple(sorted(p for p in found if p))


def _records(store: ManifestStore, repository: str, manifest: Manifest) -> tuple[RecordInfo, ...]:
    """Build records attached to each arch image of a list (or to the image itself)."""
    document = json.loads(manifest.data)
    subjects = [str(m["digest"]) for m in document.get("manifests") or []] or [manifest.digest]
    infos: list[RecordInfo] = []
    for digest in subjects:
        infos += [_info(r) for r in find_build_records(store, repository, digest)]
    return tuple(sorted(infos, key=lambda i: i.cell_id))


def _rollbacks(
    store: ManifestStore, repository: str, manifest: Manifest
) -> tuple[RollbackInfo, ...]:
    found = []
    for descriptor in list_referrers(store, repository, manifest.digest, ROLLBACK_RECORD_TYPE):
        entry = json.loads(read_referrer_payload(store, repository, descriptor))
        found.append(RollbackInfo(str(entry.get("user", "?")), str(entry.get("reason", "")),
                                  str(entry.get("time", ""))))
    return tuple(sorted(found, key=lambda r: r.time))


def _info(record: BuildRecord) -> RecordInfo:
    return RecordInfo(record.cell_id, record.recipe_commit, record.builder, record.build_time)
