"""Rollback: point the moving tags (OCI and SIF) back at an earlier version, and say who and why.

Everything is looked up before anything moves. The rollback record goes to the registry as a
referrer of the manifest rolled back to, and to the local log ``rollbacks.jsonl``.
"""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import asdict, dataclass
from pathlib import Path

from hepbuild.errors import UsageError
from hepbuild.output import warn
from hepbuild.release.history import TagScheme, read_history
from hepbuild.release.records import ROLLBACK_RECORD_TYPE, append_jsonl, attach_referrer
from hepbuild.release.store import Manifest, ManifestStore

ROLLBACK_LOG = "rollbacks.jsonl"


@dataclass(frozen=True)
class TagMove:
    repository: str
    tag: str
    old_digest: str | None
    new_digest: str


@dataclass(frozen=True)
class Rollback:
    image: str
    to_tag: str
    digest: str
    moves: tuple[TagMove, ...]
    user: str
    reason: str
    time: str
    record_digest: str | None  # None when nothing moved and so nothing was recorded
    sif_digest: str | None = None
    already_there: bool = False  # every moving tag already pointed at to_tag


@dataclass(frozen=True)
class RollbackRequest:
    image: str  # group/name-base, as the user named it
    repository: str  # OCI repository path in the registry
    sif_repository: str | None  # SIF repository path, None when the recipe has no SIF
    scheme: TagScheme
    to_tag: str
    user: str
    reason: str


def rollback(
    store: ManifestStore, request: RollbackRequest, when: dt.datetime, records_dir: Path
) -> Rollback:
    if not request.reason.strip():
        raise UsageError(f"rollback of {request.image} needs a reason; nothing was moved",
                         "say why with --reason TEXT; it is kept in the rollback record")
    version = request.scheme.version_of(request.to_tag)
    target = _target(store, request)
    sif_target = _sif_target(store, request)
    tags = (f"{version}-{request.scheme.base}", request.scheme.latest)

    moves = _plan_moves(store, request.repository, tags, target)
    if sif_target is not None and request.sif_repository:
        moves += _plan_moves(store, request.sif_repository, tags, sif_target)
    # A tag that already points at the target is not a move: "moving" X to X would write a
    # record of a rollback that changed nothing.
    moves = [(move, manifest) for move, manifest in moves if move.old_digest != move.new_digest]
    if not moves:
        return _already_there(request, when, target, sif_target)
    for move, manifest in moves:
        store.put_manifest(move.repository, move.tag, manifest.data, manifest.media_type)

    return _record(store, request, when, records_dir, target, sif_target, [m for m, _ in moves])


def _already_there(request: RollbackRequest, when: dt.datetime, target: Manifest,
                   sif_target: Manifest | None) -> Rollback:
    return Rollback(
        image=request.image, to_tag=request.to_tag, digest=target.digest, moves=(),
        user=request.user, reason=request.reason, time=_stamp(when), record_digest=None,
        sif_digest=sif_target.digest if sif_target else None, already_there=True,
    )


def _stamp(when: dt.datetime) -> str:
    return when.astimezone(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def _target(store: ManifestStore, request: RollbackRequest) -> Manifest:
    target = store.find_manifest(request.repository, request.to_tag)
    if target is None:
        available = read_history(store, request.repository, request.scheme).available()
        listing = ", ".join(available) if available else "none"
        raise UsageError(
            f"{request.image} has no version {request.to_tag!r}; nothing was moved",
            f"available versions: {listing}",
        )
    return target


def _sif_target(store: ManifestStore, request: RollbackRequest) -> Manifest | None:
    if not request.sif_repository:
        return None
    target = store.find_manifest(request.sif_repository, request.to_tag)
    if target is not None:
        return target
    if store.list_tags(request.sif_repository):
        raise UsageError(
            f"{request.image}: the SIF repository has no {request.to_tag!r}; nothing was moved",
            "roll back to a version published with its SIF (see hepbuild history)",
        )
    warn(f"{request.sif_repository} holds no SIF versions; only the OCI tags move")
    return None


def _plan_moves(
    store: ManifestStore, repository: str, tags: tuple[str, ...], target: Manifest
) -> list[tuple[TagMove, Manifest]]:
    moves = []
    for tag in tags:
        current = store.find_manifest(repository, tag)
        old = current.digest if current else None
        moves.append((TagMove(repository, tag, old, target.digest), target))
    return moves


def _record(
    store: ManifestStore, request: RollbackRequest, when: dt.datetime, records_dir: Path,
    target: Manifest, sif_target: Manifest | None, moves: list[TagMove],
) -> Rollback:
    stamp = _stamp(when)
    entry = {
        "schema": 1, "kind": "rollback", "image": request.image, "to_tag": request.to_tag,
        "digest": target.digest, "sif_digest": sif_target.digest if sif_target else None,
        "moves": [asdict(m) for m in moves], "user": request.user, "reason": request.reason,
        "time": stamp,
    }
    payload = json.dumps(entry, sort_keys=True, indent=2).encode() + b"\n"
    annotations = {"dev.hepbuild.rollback.user": request.user, "dev.hepbuild.rollback.time": stamp}
    record_digest = attach_referrer(store, request.repository, target, ROLLBACK_RECORD_TYPE,
                                    payload, annotations)
    append_jsonl(records_dir / ROLLBACK_LOG, {**entry, "record_digest": record_digest})
    return Rollback(
        image=request.image, to_tag=request.to_tag, digest=target.digest, moves=tuple(moves),
        user=request.user, reason=request.reason, time=stamp, record_digest=record_digest,
        sif_digest=sif_target.digest if sif_target else None,
    )
