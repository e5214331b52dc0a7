"""SIF files over ORAS, byte-compatible with ``apptainer push/pull oras://`` (FORMATS.md §3).

Beyond Apptainer: several per-arch SIF tags can be grouped under one tag by an OCI index, whose
platforms carry the arm variants (v7, v8), and a pull picks the entry for ``--arch``.
"""

from __future__ import annotations

import datetime as _dt
import json
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

from hepbuild.errors import ImageError, RegistryError, UsageError
from hepbuild.platforms import (
    Platform,
    arch_from_oci,
    get_arch,
    host_arch,
    parse_platform,
    pick_platform,
)
from hepbuild.registry import media
from hepbuild.registry.client import Descriptor, Manifest, RegistryClient, sha256_of
from hepbuild.registry.reference import Reference, parse_reference
from hepbuild.registry.result import PullResult, PushResult
from hepbuild.registry.sifmeta import is_sif, read_sif_summary

SIF_CONFIG_DATA = b"{}"


def go_json(value: Any) -> bytes:
    """Compact JSON as Go's encoding/json writes it (HTML characters escaped)."""
    text = json.dumps(value, separators=(",", ":"), ensure_ascii=False)
    for char, escaped in (
        ("&", "\\u0026"),
        ("<", "\\u003c"),
        (">", "\\u003e"),
        ("\u2028", "\\u2028"),
        ("\u2029", "\\u2029"),
    ):
        text = text.replace(char, escaped)
    return text.encode()


def sif_config_descriptor() -> Descriptor:
    digest, size = sha256_of(SIF_CONFIG_DATA)
    return Descriptor(media.SIF_CONFIG, digest, size, data="e30=")


def sif_manifest(layer: Descriptor, created: str | None) -> bytes:
    """The manifest Apptainer writes: fields in go-containerregistry's order."""
    manifest: dict[str, Any] = {
        "schemaVersion": 2,
        "mediaType": media.OCI_MANIFEST,
        "config": sif_config_descriptor().to_json(),
        "layers": [layer.to_json()],
    }
    if created:
        manifest["annotations"] = {media.CREATED: created}
    return go_json(manifest)


def _now_rfc3339() -> str:
    return _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def push_sif(
    client: RegistryClient, sif_path: Path, ref: Reference | str, arch: str | None = None
) -> PushResult:
    """Push one SIF. The config blob goes first, the manifest last (never a dangling tag)."""
    ref = _as_reference(ref)
    sif_path = Path(sif_path)
    go_arch = _checked_arch(sif_path, arch)
    summary = read_sif_summary(sif_path)
    created = _now_rfc3339() if summary.created is None else summary.created

    before = client.bytes_uploaded
    config = sif_config_descriptor()
    client.push_blob(ref.repository, SIF_CONFIG_DATA, config.digest)
    layer, _ = client.push_blob(ref.repository, sif_path)
    layer = replace(layer, media_type=media.SIF_LAYER, annotations={media.TITLE: sif_path.name})

    data = sif_manifest(layer, created)
    digest = client.put_manifest(ref.repository, ref.ref, data, media.OCI_MANIFEST)
    size = layer.size + config.size + len(data)
    return PushResult(
        str(ref),
        digest,
        media.OCI_MANIFEST,
        size,
        client.bytes_uploaded - before,
        manifest_size=len(data),
        platform=get_arch(go_arch).platform,
    )


def _checked_arch(sif_path: Path, arch: str | None) -> str:
    summary = read_sif_summary(sif_path)
    if summary.arch == "unknown":
        raise ImageError(
            f"{sif_path}: the SIF's primary architecture is unknown",
            "rebuild it with a primary system partition for a real architecture",
        )
    if arch is not None and get_arch(arch).oci != summary.arch:
        raise UsageError(
            f"{sif_path} is a {summary.arch} SIF, not {arch}",
            "drop --arch, or push the SIF built for that architecture",
        )
    return summary.arch


def push_sif_set(
    client: RegistryClient, sif_paths: Sequence[Path], ref: Reference | str
) -> PushResult:
    """Per-arch tags ``<tag>-<arch>`` plus an OCI index under ``<tag>`` grouping them."""
    ref = _as_reference(ref)
    if ref.tag is None:
        raise UsageError(f"{ref}: a SIF index needs a tag, not a digest")
    # Every file is checked before the first byte goes out: a bad set uploads nothing.
    arches = sif_arches(sif_paths)
    children = [
        push_sif(client, Path(path), ref.with_tag(f"{ref.tag}-{name}"))
        for path, name in zip(sif_paths, arches, strict=True)
    ]
    return push_sif_index(client, ref, children)


def sif_arches(sif_paths: Sequence[Path]) -> list[str]:
    """The centre's arch name of each SIF; a UsageError when two are for the same arch."""
    first_for: dict[str, Path] = {}
    names = []
    for path in sif_paths:
        name = get_arch(_checked_arch(Path(path), None)).name
        if name in first_for:
            raise UsageError(
                f"two SIFs for {name} given: {first_for[name]} and {path}",
                "give one SIF per architecture",
            )
        first_for[name] = Path(path)
        names.append(name)
    return names


def push_sif_index(
    client: RegistryClient, ref: Reference, children: Sequence[PushResult]
) -> PushResult:
    entries = []
    for child in children:
        if child.platform is None:
            raise RegistryError(f"{child.reference} has no platform to list in an index")
        platform = platform_json(parse_platform(child.platform))
        entry = Descriptor(child.media_type, child.digest, child.manifest_size, platform=platform)
        entries.append(entry.to_json())
    index = go_json({"schemaVersion": 2, "mediaType": media.OCI_INDEX, "manifests": entries})
    digest = client.put_manifest(ref.repository, ref.ref, index, media.OCI_INDEX)
    return PushResult(
        str(ref),
        digest,
        media.OCI_INDEX,
        sum(c.size for c in children) + len(index),
        sum(c.bytes_uploaded for c in children),
        manifest_size=len(index),
        children=list(children),
    )


def platform_json(platform: Platform) -> dict[str, str]:
    out = {"architecture": platform.architecture, "os": platform.os}
    variant = platform.variant or _written_variant(platform.architecture)
    if variant:
        out["variant"] = variant
    return out


def _written_variant(architecture: str) -> str | None:
    """The variant hepbuild writes for an OCI architecture (platforms.py knows them)."""
    try:
        return arch_from_oci(architecture).variant
    except UsageError:
        return None


# -- pull ------------------------------------------------------------------------------------


def pull_sif(
    client: RegistryClient,
    ref: Reference | str,
    dest: Path,
    arch: str | None = None,
    *,
    force: bool = False,
) -> PullResult:
    """Fetch a SIF. An index is resolved for ``arch`` (default: this host).

    ``dest`` may be a folder (the file then gets the layer's title as its name). An existing
    file is refused unless ``force``; the download goes to a temporary name that never stays.
    """
    ref = _as_reference(ref)
    dest = Path(dest)
    if not dest.is_dir() and not dest.parent.is_dir():
        raise UsageError(f"cannot write {dest}: folder {dest.parent} does not exist")
    manifest = client.get_manifest(ref.repository, ref.ref)
    platform = None
    if manifest.is_index:
        manifest, platform = _resolve_index(client, ref, manifest, arch)
    layer = _single_sif_layer(ref, manifest)
    dest = _pull_destination(ref, dest, layer, force=force)

    tmp = dest.with_name(f".{dest.name}.pull")
    try:
        client.get_blob(ref.repository, layer.digest, tmp)
        if not is_sif(tmp):
            raise ImageError(
                f"{ref}: the downloaded layer is not a SIF file",
                "the artifact was not pushed as a SIF; pull it with skopeo instead",
            )
        sif_arch = read_sif_summary(tmp).arch
        tmp.replace(dest)
    finally:
        tmp.unlink(missing_ok=True)
    if platform is None and sif_arch != "unknown":
        platform = parse_platform(arch_from_oci(sif_arch).platform)
    return PullResult(
        str(ref),
        manifest.digest,
        layer.digest,
        layer.size,
        str(dest),
        str(platform) if platform else None,
    )


def _pull_destination(ref: Reference, dest: Path, layer: Descriptor, *, force: bool) -> Path:
    """The file to write: ``dest``, or ``dest/<layer title>`` when ``dest`` is a folder."""
    if dest.is_dir():
        title = (layer.annotations or {}).get(media.TITLE, "")
        name = Path(title).name
        if not name or name in (".", "..") or name != title:
            raise UsageError(
                f"{dest} is a folder and {ref}'s layer has no usable file name",
                f"give the file to write, e.g. {dest / 'image.sif'}",
            )
        dest = dest / name
    if dest.is_dir():
        raise UsageError(f"cannot write {dest}: it is a folder", "give a file name to write")
    if dest.exists() and not force:
        raise UsageError(f"{dest} already exists", "remove it, or pass --force to replace it")
    return dest


def _resolve_index(
    client: RegistryClient, ref: Reference, index: Manifest, arch: str | None
) -> tuple[Manifest, Platform]:
    want = parse_platform(arch) if arch else Platform("linux", host_arch().oci, host_arch().variant)
    entries = [
        m
        for m in index.json().get("manifests", [])
        if m.get("mediaType") in media.IMAGE_TYPES and isinstance(m.get("platform"), dict)
    ]
    platforms = [
        Platform(
            str(m["platform"].get("os", "")),
            str(m["platform"].get("architecture", "")),
            m["platform"].get("variant"),
        )
        for m in entries
    ]
    chosen = entries[pick_platform(platforms, want)]
    return client.get_manifest(ref.repository, chosen["digest"]), platforms[entries.index(chosen)]


def _single_sif_layer(ref: Reference, manifest: Manifest) -> Descriptor:
    layers = manifest.json().get("layers") or []
    if len(layers) != 1:
        raise RegistryError(
            f"{ref} has {len(layers)} layers; a SIF artifact has exactly one",
            "this is not a SIF pushed over ORAS",
        )
    layer = Descriptor.from_json(layers[0])
    if layer.media_type not in media.SIF_LAYER_TYPES:
        raise RegistryError(
            f"{ref}: layer type {layer.media_type} is not a SIF",
            "pull OCI images with skopeo or `hepbuild convert docker://…`",
        )
    return layer


def _as_reference(ref: Reference | str) -> Reference:
    return ref if isinstance(ref, Reference) else parse_reference(ref, default_transport="oras")
