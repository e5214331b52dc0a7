"""OCI image layouts: reading index/manifest/config, opening layers, writing a layout.

Layers are decompressed by media type into a temporary plain tar (checked against the blob
digest on the compressed bytes and the config's diff_id on the uncompressed ones), so that the
flattener can seek into them.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import os
import tempfile
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

import zstandard

from hepbuild.errors import ImageError
from hepbuild.files import atomic_write, sha256_digest, sha256_file
from hepbuild.platforms import Platform, host_arch, parse_platform, pick_platform

OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER_TAR = "application/vnd.oci.image.layer.v1.tar"
OCI_LAYER_GZIP = "application/vnd.oci.image.layer.v1.tar+gzip"
DOCKER_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
REF_NAME = "org.opencontainers.image.ref.name"

INDEX_TYPES = {OCI_INDEX, DOCKER_LIST}
MANIFEST_TYPES = {OCI_MANIFEST, DOCKER_MANIFEST}

# Layer media type -> compression. Non-distributable and Docker spellings unpack the same.
LAYER_COMPRESSION: dict[str, str] = {
    OCI_LAYER_TAR: "none",
    OCI_LAYER_GZIP: "gzip",
    "application/vnd.oci.image.layer.v1.tar+zstd": "zstd",
    "application/vnd.oci.image.layer.nondistributable.v1.tar": "none",
    "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip": "gzip",
    "application/vnd.oci.image.layer.nondistributable.v1.tar+zstd": "zstd",
    "application/vnd.docker.image.rootfs.diff.tar.gzip": "gzip",
    "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip": "gzip",
    "application/vnd.docker.image.rootfs.diff.tar": "none",
}
GZIP_MAGIC = b"\x1f\x8b"
ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"
CHUNK = 1 << 20


@dataclass(frozen=True)
class LayerRef:
    digest: str
    media_type: str
    size: int
    diff_id: str | None


@dataclass(frozen=True)
class OciImage:
    """One platform's image inside a layout: its manifest, config and layers."""

    layout: Path
    manifest_digest: str
    manifest: dict[str, Any]
    config: dict[str, Any]
    layers: tuple[LayerRef, ...]
    platform: Platform | None

    def blob_path(self, digest: str) -> Path:
        return blob_path(self.layout, digest)


def blob_path(layout: Path, digest: str) -> Path:
    algorithm, _, encoded = digest.partition(":")
    if algorithm != "sha256" or len(encoded) != 64 or not _is_hex(encoded):
        raise ImageError(f"{layout}: unsupported or malformed digest {digest!r}")
    return layout / "blobs" / "sha256" / encoded


def _is_hex(text: str) -> bool:
    return all(c in "0123456789abcdef" for c in text)


def read_json_blob(layout: Path, digest: str, what: str) -> dict[str, Any]:
    path = blob_path(layout, digest)
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise ImageError(f"{layout}: the {what} blob {digest} is missing") from None
    if sha256_digest(data) != digest:
        raise ImageError(f"{layout}: the {what} blob {digest} does not match its digest")
    return _parse_json(data, f"{what} {digest}")


def _parse_json(data: bytes, what: str) -> dict[str, Any]:
    try:
        value = json.loads(data)
    except (ValueError, UnicodeDecodeError) as exc:
        raise ImageError(f"{what} is not valid JSON: {exc}") from None
    if not isinstance(value, dict):
        raise ImageError(f"{what} is not a JSON object")
    return value


def open_layout(layout: Path, tag: str | None = None, arch: str | None = None) -> OciImage:
    """Pick the manifest for ``tag`` (or the only one) and ``arch`` (default: the host)."""
    try:
        index = _parse_json((layout / "index.json").read_bytes(), f"{layout}/index.json")
    except FileNotFoundError:
        raise ImageError(f"{layout} is not an OCI layout (no index.json)",
                         "give an OCI image layout directory, e.g. oci:DIR[:TAG]") from None
    entries = _entries_for_tag(layout, index, tag)
    want = parse_platform(arch) if arch else parse_platform(host_arch().name)
    descriptor = _resolve_platform(layout, entries, want, explicit=arch is not None)
    return _load_manifest(layout, descriptor)


def _entries_for_tag(layout: Path, index: dict[str, Any], tag: str | None) -> list[dict]:
    manifests = [m for m in index.get("manifests") or [] if isinstance(m, dict)]
    if tag is not None:
        tagged = [m for m in manifests if (m.get("annotations") or {}).get(REF_NAME) == tag]
        if not tagged:
            there = sorted({(m.get("annotations") or {}).get(REF_NAME, "") for m in manifests})
            raise ImageError(f"{layout}: no image tagged {tag!r} (tags: {', '.join(there)})")
        return tagged
    if not manifests:
        raise ImageError(f"{layout}: index.json lists no images")
    return manifests


def _resolve_platform(layout: Path, entries: list[dict], want: Platform, explicit: bool,
                      depth: int = 0) -> dict:
    if depth > 4:
        raise ImageError(f"{layout}: image indexes nested too deeply")
    known = [e for e in entries if e.get("mediaType") in INDEX_TYPES | MANIFEST_TYPES]
    if len(known) == 1 and known[0].get("mediaType") in MANIFEST_TYPES and \
            "platform" not in known[0]:
        return known[0]
    if len(known) == 1 and known[0].get("mediaType") in INDEX_TYPES:
        nested = read_json_blob(layout, known[0]["digest"], "index")
        return _resolve_platform(layout, nested.get("manifests") or [], want, explicit, depth + 1)
    with_platform = [e for e in known if isinstance(e.get("platform"), dict)]
    if not with_platform:
        raise ImageError(f"{layout}: {len(known)} images and none names its platform",
                         "select one by tag: oci:DIR:TAG")
    platforms = [_platform_of(e["platform"]) for e in with_platform]
    chosen = with_platform[pick_platform(platforms, want)]
    if chosen.get("mediaType") in INDEX_TYPES:
        nested = read_json_blob(layout, chosen["digest"], "index")
        return _resolve_platform(layout, nested.get("manifests") or [], want, explicit, depth + 1)
    return chosen


def _platform_of(raw: dict[str, Any]) -> Platform:
    return Platform(str(raw.get("os", "")), str(raw.get("architecture", "")),
                    raw.get("variant") or None)


def _load_manifest(layout: Path, descriptor: dict[str, Any]) -> OciImage:
    digest = descriptor["digest"]
    manifest = read_json_blob(layout, digest, "manifest")
    config_desc = manifest.get("config") or {}
    config = read_json_blob(layout, config_desc.get("digest", ""), "config")
    diff_ids = (config.get("rootfs") or {}).get("diff_ids") or []
    layers = []
    for i, layer in enumerate(manifest.get("layers") or []):
        diff_id = diff_ids[i] if i < len(diff_ids) else None
        layers.append(LayerRef(layer["digest"], layer.get("mediaType", ""),
                               int(layer.get("size", -1)), diff_id))
    platform = None
    if config.get("architecture"):
        platform = Platform(config.get("os", "linux"), config["architecture"],
                            config.get("variant") or None)
    return OciImage(layout, digest, manifest, config, tuple(layers), platform)


# --- layers -----------------------------------------------------------------------------


def layer_compression(layer: LayerRef) -> str:
    kind = LAYER_COMPRESSION.get(layer.media_type)
    if kind is None:
        raise ImageError(
            f"layer {layer.digest} has unknown media type {layer.media_type!r}",
            "hepbuild reads OCI tar, tar+gzip, tar+zstd and Docker rootfs.diff layers",
        )
    return kind


def _sniff(path: Path) -> bytes:
    with open(path, "rb") as fh:
        return fh.read(4)


@dataclass
class PlainLayer:
    """A layer as an uncompressed tar on disk (the blob itself, or a temporary copy)."""

    ref: LayerRef
    path: Path
    temporary: bool


def open_plain_layer(image: OciImage, layer: LayerRef, workdir: Path) -> PlainLayer:
    """Check the blob digest, decompress by media type, check the diff_id."""
    source = image.blob_path(layer.digest)
    if not source.exists():
        raise ImageError(f"{image.layout}: layer blob {layer.digest} is missing")
    kind = _effective_compression(source, layer)
    if kind == "none":
        _check_digest(source, layer.digest, f"layer {layer.digest}")
        if layer.diff_id and layer.diff_id != layer.digest:
            raise ImageError(f"layer {layer.digest}: uncompressed but its diff_id is "
                             f"{layer.diff_id}", "the image config does not match its layers")
        return PlainLayer(layer, source, temporary=False)
    return _decompress(source, layer, kind, workdir)


def _effective_compression(source: Path, layer: LayerRef) -> str:
    kind = layer_compression(layer)
    magic = _sniff(source)
    if kind == "none" and magic.startswith(GZIP_MAGIC):
        # Some producers label gzip bytes as plain tar; the digest still covers those bytes.
        return "gzip"
    if kind == "none" and magic.startswith(ZSTD_MAGIC):
        return "zstd"
    if kind == "gzip" and magic and not magic.startswith(GZIP_MAGIC):
        raise ImageError(f"layer {layer.digest} is typed {layer.media_type} but is not gzip data")
    return kind


def _check_digest(path: Path, digest: str, what: str) -> None:
    actual = sha256_file(path)
    if actual != digest:
        raise ImageError(f"{what}: content does not match its digest ({actual})",
                         "the blob is corrupted; pull the image again")


def _decompress(source: Path, layer: LayerRef, kind: str, workdir: Path) -> PlainLayer:
    fd, name = tempfile.mkstemp(prefix="layer-", suffix=".tar", dir=workdir)
    target = Path(name)
    compressed, plain = hashlib.sha256(), hashlib.sha256()
    try:
        with open(source, "rb") as raw, os.fdopen(fd, "wb") as out:
            for chunk in _decompressed_chunks(raw, kind, compressed, layer):
                plain.update(chunk)
                out.write(chunk)
    except BaseException:
        target.unlink(missing_ok=True)
        raise
    _verify(layer, compressed.hexdigest(), plain.hexdigest(), target)
    return PlainLayer(layer, target, temporary=True)


def _verify(layer: LayerRef, compressed: str, plain: str, target: Path) -> None:
    problem = None
    if "sha256:" + compressed != layer.digest:
        problem = f"layer {layer.digest}: blob does not match its digest (sha256:{compressed})"
    elif layer.diff_id and "sha256:" + plain != layer.diff_id:
        problem = (f"layer {layer.digest}: uncompressed content sha256:{plain} does not match "
                   f"the diff_id {layer.diff_id} in the image config")
    if problem:
        target.unlink(missing_ok=True)
        raise ImageError(problem, "the image is corrupted; pull or build it again")


class _HashingReader:
    def __init__(self, raw: BinaryIO, sha: Any) -> None:
        self.raw, self.sha = raw, sha

    def read(self, size: int = -1) -> bytes:
        data = self.raw.read(size)
        self.sha.update(data)
        return data


def _decompressed_chunks(raw: BinaryIO, kind: str, sha: Any, layer: LayerRef) -> Iterator[bytes]:
    reader = _HashingReader(raw, sha)
    try:
        if kind == "gzip":
            yield from _gunzip(reader)
        else:
            stream = zstandard.ZstdDecompressor().stream_reader(
                reader, read_across_frames=True)  # type: ignore[arg-type]  # duck-typed reader
            while chunk := stream.read(CHUNK):
                yield chunk
    except (OSError, EOFError, zlib.error, zstandard.ZstdError) as exc:
        raise ImageError(f"layer {layer.digest}: cannot decompress {kind} data: {exc}") from None
    while reader.read(CHUNK):
        pass  # hash any trailing bytes too, so the digest check covers the whole blob


def _gunzip(reader: _HashingReader) -> Iterator[bytes]:
    """Multi-member gzip, decoded with zlib directly (faster than the gzip module)."""
    decoder = zlib.decompressobj(zlib.MAX_WBITS | 16)
    while True:
        chunk = reader.read(CHUNK)
        if not chunk:
            break
        while chunk:
            yield decoder.decompress(chunk)
            if decoder.eof:
                chunk = decoder.unused_data
                decoder = zlib.decompressobj(zlib.MAX_WBITS | 16)
            else:
                chunk = b""
    tail = decoder.flush()
    if tail:
        yield tail


# --- writing a layout -------------------------------------------------------------------


def write_blob(layout: Path, data: bytes) -> tuple[str, int]:
    digest = sha256_digest(data)
    path = blob_path(layout, digest)
    if not path.exists():
        atomic_write(path, data)
    return digest, len(data)


def add_blob_file(layout: Path, source: Path, digest: str) -> None:
    path = blob_path(layout, digest)
    path.parent.mkdir(parents=True, exist_ok=True)
    os.replace(source, path)


def index_entry(manifest_digest: str, manifest_size: int, tag: str, platform: Platform | None
                ) -> dict[str, Any]:
    """One ``manifests`` entry of an index.json: a manifest under a tag, for a platform."""
    entry: dict[str, Any] = {"mediaType": OCI_MANIFEST, "digest": manifest_digest,
                             "size": manifest_size, "annotations": {REF_NAME: tag}}
    if platform is not None:
        entry["platform"] = {"os": platform.os, "architecture": platform.architecture}
        if platform.variant:
            entry["platform"]["variant"] = platform.variant
    return entry


def write_index(layout: Path, entries: list[dict[str, Any]]) -> None:
    """``oci-layout`` and ``index.json``, each replaced atomically (readers never see half)."""
    atomic_write(layout / "oci-layout", json.dumps({"imageLayoutVersion": "1.0.0"}))
    index = {"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": entries}
    atomic_write(layout / "index.json", json.dumps(index, indent=2))


def write_layout_index(layout: Path, manifest_digest: str, manifest_size: int, tag: str,
                       platform: Platform | None) -> None:
    write_index(layout, [index_entry(manifest_digest, manifest_size, tag, platform)])


def gzip_file(source: Path, target: Path) -> tuple[str, str, int]:
    """gzip ``source`` into ``target``; return (compressed digest, plain digest, size)."""
    plain, packed = hashlib.sha256(), hashlib.sha256()
    with open(source, "rb") as src, open(target, "wb") as raw, gzip.GzipFile(
            fileobj=_HashingWriter(raw, packed), mode="wb", compresslevel=6, mtime=0) as gz:
        while chunk := src.read(CHUNK):
            plain.update(chunk)
            gz.write(chunk)
    return "sha256:" + packed.hexdigest(), "sha256:" + plain.hexdigest(), target.stat().st_size


class _HashingWriter:
    def __init__(self, raw: BinaryIO, sha: Any) -> None:
        self.raw, self.sha = raw, sha

    def write(self, data: bytes) -> int:
        self.sha.update(data)
        return self.raw.write(data)

    def flush(self) -> None:
        self.raw.flush()
