"""Build and rollback records: JSON stored next to the image as OCI referrers, plus a local copy.

A record is an OCI image manifest whose ``subject`` is the image it describes, with
``artifactType`` naming the record kind, the OCI empty descriptor as config and one layer
holding the JSON. Registries without the referrers API (Debian's docker-registry 2.8 answers
404) get the fallback of distribution-spec v1.1: a ``sha256-<hex>`` tag holding an image index
that we keep up to date ourselves.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

from hepbuild.errors import ImageError
from hepbuild.files import atomic_write, sha256_digest
from hepbuild.release.store import OCI_INDEX, OCI_MANIFEST, Manifest, ManifestStore

RECORD_SCHEMA = 1
# Where a run keeps its local copies (relative to the project), and the build report that
# `hepbuild build` writes and `hepbuild publish` reads.
RECORDS_DIR = Path("build") / "records"
BUILD_RESULTS = Path("build") / "results.json"
BUILD_RECORD_TYPE = "application/vnd.hepbuild.build-record.v1+json"
ROLLBACK_RECORD_TYPE = "application/vnd.hepbuild.rollback-record.v1+json"
EMPTY_CONFIG_TYPE = "application/vnd.oci.empty.v1+json"
EMPTY_CONFIG = b"{}"
RECORD_ANNOTATION = "dev.hepbuild.record.cell"


@dataclass(frozen=True)
class BuildRecord:
    cell_id: str
    oci_digest: str | None
    sif_sha256: str | None
    sif_md5: str | None
    sandbox_path: str | None
    recipe_commit: str | None
    base_digest: str | None
    content_key: str | None
    build_time: str  # ISO 8601, UTC
    hepbuild_version: str
    builder: str
    schema: int = RECORD_SCHEMA

    def to_json(self) -> bytes:
        return json.dumps(asdict(self), sort_keys=True, indent=2).encode() + b"\n"

    @classmethod
    def from_json(cls, data: bytes, where: str) -> BuildRecord:
        try:
            raw = json.loads(data)
        except ValueError as exc:
            raise ImageError(f"build record {where} is not JSON: {exc}") from None
        if not isinstance(raw, dict) or raw.get("schema") != RECORD_SCHEMA:
            raise ImageError(f"build record {where} has an unknown schema version")
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in raw.items() if k in known})


def record_file_name(cell_id: str) -> str:
    return cell_id.replace("/", "__") + ".json"


def write_json_atomic(path: Path, data: bytes) -> Path:
    """Never half a record under its final name (files.atomic_write)."""
    return atomic_write(path, data)


def write_local_record(records_dir: Path, record: BuildRecord) -> Path:
    return write_json_atomic(records_dir / record_file_name(record.cell_id), record.to_json())


def append_jsonl(path: Path, entry: Mapping[str, Any]) -> None:
    """One line per event; O_APPEND keeps concurrent writers' lines whole."""
    path.parent.mkdir(parents=True, exist_ok=True)
    line = json.dumps(entry, sort_keys=True) + "\n"
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, line.encode())
    finally:
        os.close(fd)


def referrer_manifest(
    subject: Manifest, artifact_type: str, layer_digest: str, layer_size: int,
    annotations: Mapping[str, str],
) -> dict[str, Any]:
    return {
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "artifactType": artifact_type,
        "config": {"mediaType": EMPTY_CONFIG_TYPE, "digest": _empty_digest(), "size": 2},
        "layers": [{"mediaType": artifact_type, "digest": layer_digest, "size": layer_size}],
        "subject": subject.descriptor(),
        "annotations": dict(annotations),
    }


def _empty_digest() -> str:
    return sha256_digest(EMPTY_CONFIG)


def fallback_tag(digest: str) -> str:
    """The referrers-tag schema: ``<alg>-<hex>`` with the spec's truncations."""
    algorithm, _, encoded = digest.partition(":")
    clean = "".join(c if c.isalnum() or c in "_.-" else "-" for c in encoded[:64])
    return f"{algorithm[:32]}-{clean}"


def attach_referrer(
    store: ManifestStore, repository: str, subject: Manifest, artifact_type: str,
    payload: bytes, annotations: Mapping[str, str],
) -> str:
    """Push ``payload`` as a referrer of ``subject``; returns the referrer manifest digest."""
    store.push_blob(repository, EMPTY_CONFIG)
    layer = store.push_blob(repository, payload)
    manifest = referrer_manifest(subject, artifact_type, layer, len(payload), annotations)
    data = json.dumps(manifest, sort_keys=True, separators=(",", ":")).encode()
    digest = sha256_digest(data)
    store.put_manifest(repository, digest, data, OCI_MANIFEST)
    # A registry with the referrers API lists the new manifest at once; one without it
    # (docker-registry 2.8 answers 404) needs the fallback tag index kept by us.
    listed = {d.get("digest") for d in store.referrers(repository, subject.digest)}
    if digest not in listed:
        entry = {"mediaType": OCI_MANIFEST, "digest": digest, "size": len(data),
                 "artifactType": artifact_type, "annotations": dict(annotations)}
        _add_to_fallback_index(store, repository, subject.digest, entry)
    return digest


def _add_to_fallback_index(
    store: ManifestStore, repository: str, subject_digest: str, entry: dict[str, Any]
) -> None:
    tag = fallback_tag(subject_digest)
    current = store.find_manifest(repository, tag)
    index: dict[str, Any] = (
        json.loads(current.data) if current else
        {"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": []}
    )
    if any(m.get("digest") == entry["digest"] for m in index.get("manifests", [])):
        return
    index.setdefault("manifests", []).append(entry)
    data = json.dumps(index, sort_keys=True, separators=(",", ":")).encode()
    store.put_manifest(repository, tag, data, OCI_INDEX)


def list_referrers(
    store: ManifestStore, repository: str, digest: str, artifact_type: str
) -> list[dict[str, Any]]:
    """Descriptors of ``digest``'s referrers of one type, by the API or its fallback tag."""
    found = store.referrers(repository, digest)
    return [d for d in found if d.get("artifactType") == artifact_type]


def read_referrer_payload(
    store: ManifestStore, repository: str, descriptor: Mapping[str, Any]
) -> bytes:
    manifest = store.find_manifest(repository, str(descriptor["digest"]))
    if manifest is None:
        raise ImageError(f"referrer {descriptor['digest']} in {repository} is listed but missing")
    layers = json.loads(manifest.data).get("layers") or []
    if len(layers) != 1:
        raise ImageError(f"referrer {manifest.digest} in {repository} has {len(layers)} layers")
    return store.get_blob(repository, layers[0]["digest"])


def find_build_records(store: ManifestStore, repository: str, digest: str) -> list[BuildRecord]:
    found = list_referrers(store, repository, digest, BUILD_RECORD_TYPE)
    records = []
    for descriptor in found:
        payload = read_referrer_payload(store, repository, descriptor)
        records.append(BuildRecord.from_json(payload, f"{repository}@{descriptor['digest']}"))
    return records
