"""Push an OCI image layout (single image or multi-arch index) to a registry.

Blobs go first (skipped when the registry has them), then child manifests by digest, then the
top manifest under the tag: a tag never points at missing content. Manifest bytes are sent
exactly as stored, so digests are preserved.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from hepbuild.errors import ImageError, UsageError
from hepbuild.platforms import Platform
from hepbuild.registry import media
from hepbuild.registry.client import Descriptor, RegistryClient
from hepbuild.registry.oras import go_json, platform_json
from hepbuild.registry.reference import Reference, parse_reference
from hepbuild.registry.result import PushResult


def push_image_layout(
    client: RegistryClient, layout_dir: Path, ref: Reference | str, tag: str | None = None
) -> PushResult:
    """Push the image tagged ``tag`` in the layout (or its only image, or all of its entries)."""
    ref = ref if isinstance(ref, Reference) else parse_reference(ref)
    layout = Path(layout_dir)
    entries = select_entries(layout, tag)
    before = client.bytes_uploaded
    platform = None
    if len(entries) == 1:
        digest, media_type, size, manifest_size = _push_manifest(
            client, layout, ref, entries[0], ref.ref
        )
        platform = _entry_platform(entries[0])
    else:
        digest, media_type, size, manifest_size = _push_grouped(client, layout, ref, entries)
    return PushResult(
        str(ref),
        digest,
        media_type,
        size,
        client.bytes_uploaded - before,
        manifest_size=manifest_size,
        platform=platform,
    )


def _entry_platform(entry: dict[str, Any]) -> str | None:
    """``linux/arm64/v8`` for an index entry that names one platform (so --json has an arch)."""
    platform = entry.get("platform")
    if not isinstance(platform, dict) or not platform.get("architecture"):
        return None
    return str(
        Platform(str(platform.get("os", "linux")), str(platform["architecture"]),
                 platform.get("variant"))
    )


def select_entries(layout: Path, tag: str | None) -> list[dict[str, Any]]:
    index = _read_json(layout / "index.json", layout)
    manifests = [m for m in index.get("manifests", []) if isinstance(m, dict)]
    if tag is not None:
        chosen = [m for m in manifests if (m.get("annotations") or {}).get(media.REF_NAME) == tag]
        if not chosen:
            names = sorted(
                {(m.get("annotations") or {}).get(media.REF_NAME, "") for m in manifests}
            )
            raise UsageError(
                f"{layout}: no image tagged {tag!r}",
                f"tags in this layout: {', '.join(n for n in names if n) or 'none'}",
            )
        return chosen
    if not manifests:
        raise ImageError(f"{layout}/index.json lists no images")
    return manifests


def _push_manifest(
    client: RegistryClient, layout: Path, ref: Reference, entry: dict[str, Any], target: str
) -> tuple[str, str, int, int]:
    digest = str(entry.get("digest", ""))
    data = _blob(layout, digest).read_bytes()
    document = json.loads(data)
    media_type = str(entry.get("mediaType") or document.get("mediaType") or media.OCI_MANIFEST)
    if media_type in media.INDEX_TYPES:
        size = 0
        for child in document.get("manifests", []):
            if child.get("mediaType") in (*media.IMAGE_TYPES, *media.INDEX_TYPES):
                size += _push_manifest(client, layout, ref, child, child["digest"])[2]
    else:
        size = _push_image_blobs(client, layout, ref, document)
    stored = client.put_manifest(ref.repository, target, data, media_type)
    return stored, media_type, size + len(data), len(data)


def _push_image_blobs(
    client: RegistryClient, layout: Path, ref: Reference, manifest: dict[str, Any]
) -> int:
    blobs = [manifest.get("config", {}), *manifest.get("layers", [])]
    total = 0
    for blob in blobs:
        descriptor = Descriptor.from_json(blob)
        if descriptor.media_type.endswith("nondistributable.v1.tar") or blob.get("urls"):
            continue  # foreign layers live elsewhere by design
        client.push_blob(ref.repository, _blob(layout, descriptor.digest), descriptor.digest)
        total += descriptor.size
    return total


def _push_grouped(
    client: RegistryClient, layout: Path, ref: Reference, entries: list[dict[str, Any]]
) -> tuple[str, str, int, int]:
    """Several per-platform manifests at the top of index.json: push them under one index."""
    listed: list[dict[str, Any]] = []
    size = 0
    for entry in entries:
        platform = entry.get("platform")
        if not isinstance(platform, dict):
            raise UsageError(
                f"{layout}: several images and one has no platform",
                "name the image to push as oci:DIR:TAG",
            )
        digest, media_type, child_size, manifest_size = _push_manifest(
            client, layout, ref, entry, entry["digest"]
        )
        size += child_size
        wanted = Platform(
            str(platform.get("os")), str(platform.get("architecture")), platform.get("variant")
        )
        listed.append(
            Descriptor(media_type, digest, manifest_size, platform=platform_json(wanted)).to_json()
        )
    index = go_json({"schemaVersion": 2, "mediaType": media.OCI_INDEX, "manifests": listed})
    digest = client.put_manifest(ref.repository, ref.ref, index, media.OCI_INDEX)
    return digest, media.OCI_INDEX, size + len(index), len(index)


def _blob(layout: Path, digest: str) -> Path:
    algorithm, _, encoded = digest.partition(":")
    path = layout / "blobs" / algorithm / encoded
    if algorithm != "sha256" or len(encoded) != 64 or not path.is_file():
        raise ImageError(
            f"{layout}: blob {digest} is missing from the layout",
            "the layout is incomplete; convert or copy the image again",
        )
    return path


def _read_json(path: Path, layout: Path) -> dict[str, Any]:
    try:
        value = json.loads(path.read_text())
    except FileNotFoundError:
        raise UsageError(
            f"{layout} is not an OCI layout (no index.json)",
            "give oci:DIR of a layout written by hepbuild convert, skopeo or umoci",
        ) from None
    except ValueError as exc:
        raise ImageError(f"{path} is not valid JSON: {exc}") from None
    if not isinstance(value, dict):
        raise ImageError(f"{path} is not a JSON object")
    return value
