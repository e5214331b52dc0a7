"""Conversion between OCI images, SIF files and sandbox directories.

Every direction goes through at most two shapes: an OCI layout on disk (registry, archive and
storage images are copied into a temporary one by skopeo) and the merged layer tree
(``flatten.py``). Outputs are built in a temporary directory beside the destination and
renamed into place, so a failure never leaves a half-written file under the final name.
"""

from __future__ import annotations

import json
import os
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hepbuild import tools
from hepbuild.errors import ImageError, UsageError
from hepbuild.files import write_checksum_files
from hepbuild.image import apptainer, oci, sif, squashfs
from hepbuild.image.flatten import Flattener, report_notes
from hepbuild.image.sandbox import tar_directory
from hepbuild.image.transports import (
    Access,
    ImageRef,
    fetch_to_layout,
    parse_ref,
    store_from_layout,
)
from hepbuild.image.unpack import check_fresh_target, remove_tree, unpack_tree
from hepbuild.platforms import (
    SIF_ARCH_NAMES,
    Platform,
    arch_from_sif_code,
    centre_name,
    host_arch,
    parse_platform,
    platform_for_oci,
    platform_matches,
)

DEFAULT_TAG = "latest"
OCI_CONFIG_NAME = "oci-config.json"
INSPECT_NAME = "inspect-metadata.json"
FILE_OUTPUTS = ("sif", "oci-archive", "docker-archive")
FILE_INPUTS = ("oci", "oci-archive", "docker-archive", "sif", "sandbox")


@dataclass(frozen=True)
class ConvertResult:
    source: str
    destination: str
    format: str  # "sif", "sandbox", "docker-archive" or "oci"
    digest: str | None  # sha256:<hex> of the file, or the manifest digest of an OCI image
    sha256: str | None
    md5: str | None
    size: int | None
    checksum_files: list[str] = field(default_factory=list)
    seconds: float = 0.0
    arch: str | None = None  # the centre's name (x86_64, arm64...), else the OCI one
    platform: str | None = None  # "linux/amd64" style


def convert(src: str, dst: str, *, arch: str | None = None, authfile: Path | None = None,
            tls_verify: bool = True, compression_level: int = squashfs.DEFAULT_LEVEL
            ) -> ConvertResult:
    """Convert ``src`` to ``dst`` (skopeo-style references, plus ``sif:`` and ``sandbox:``).

    ``compression_level`` is the gzip level (1-9) of a SIF's squashfs partition.
    """
    start = time.monotonic()
    source, target = parse_ref(src), parse_ref(dst)
    if not 1 <= compression_level <= 9:
        raise UsageError(f"compression level {compression_level} is not between 1 and 9")
    access = Access(authfile, tls_verify, compression_level)
    _check_source_exists(source)
    _check_pair(source, target)
    with _workspace(target) as work:
        produced = _dispatch(source, target, arch, access, work)
    return _finish(source, target, produced, time.monotonic() - start)


def _check_source_exists(source: ImageRef) -> None:
    """Say so plainly when a local source is missing, before skopeo reports it its own way."""
    if source.transport not in FILE_INPUTS or source.path.exists():
        return
    # skopeo allows docker-archive:FILE:REF and oci-archive:FILE:REF
    file_part, sep, _ref = source.location.rpartition(":")
    if source.transport.endswith("-archive") and sep and Path(file_part).is_file():
        return
    kind = "directory" if source.transport in ("oci", "sandbox") else "file"
    raise UsageError(f"{source}: {kind} {source.path} does not exist",
                     "check the path of the source image")


def _check_pair(source: ImageRef, target: ImageRef) -> None:
    if source.format == target.format and source.format != "oci":
        raise UsageError(f"{source} and {target} are both {source.format}; nothing to convert",
                         "copy the file or directory instead")
    if target.transport in ("sif", "sandbox", "oci", "oci-archive", "docker-archive"):
        check_fresh_target(target.path)  # hepbuild writes new outputs, never into old ones


@contextmanager
def _workspace(target: ImageRef) -> Iterator[Path]:
    """A scratch directory on the destination's filesystem, so the final rename is atomic."""
    if target.transport in ("docker", "containers-storage"):
        parent = Path(tempfile.gettempdir())
    else:
        parent = target.path.absolute().parent
        if not parent.is_dir():
            raise ImageError(f"cannot write {target}: directory {parent} does not exist")
    work = Path(tempfile.mkdtemp(prefix=".hepbuild-convert-", dir=parent))
    try:
        yield work
    finally:
        remove_tree(work)


@dataclass(frozen=True)
class _Produced:
    path: Path | None
    digest: str | None = None
    platform: Platform | None = None


def _dispatch(source: ImageRef, target: ImageRef, arch: str | None, access: Access,
              work: Path) -> _Produced:
    if source.format == "oci":
        image = _open_oci(source, arch, access, work)
        if target.format == "sandbox":
            return _oci_to_sandbox(image, source, target.path, work)
        if target.format == "sif":
            return _oci_to_sif(image, source, target.path, work, access.compression_level)
        return _oci_to_oci(image, target, access, work)
    if source.format == "sif":
        sandbox = _sif_to_sandbox(source.path, work / "rootfs")
        if target.format == "sandbox":
            os.rename(sandbox, target.path)
            return _Produced(None, platform=platform_for_oci(_sif_arch(source.path)))
        config = _config_from_sif(source.path)
        return _sandbox_to_oci(sandbox, config, target, access, work)
    if target.format == "sif":
        return _sandbox_to_sif(source.path, target.path, arch, work, access.compression_level)
    return _sandbox_to_oci(source.path, _default_config(arch), target, access, work)


# --- OCI sources ------------------------------------------------------------------------


def _open_oci(ref: ImageRef, arch: str | None, access: Access, work: Path) -> oci.OciImage:
    if ref.transport == "oci":
        image = oci.open_layout(ref.path, ref.tag, arch)
    else:
        layout = work / "source"
        fetch_to_layout(ref, layout, "source", arch, access)
        image = oci.open_layout(layout, "source", arch)
    _check_arch(image, arch, ref)
    return image


def _check_arch(image: oci.OciImage, arch: str | None, ref: ImageRef) -> None:
    if arch is None or image.platform is None:
        return
    want = parse_platform(arch)
    if not platform_matches(want, image.platform):
        raise ImageError(f"{ref} is a {image.platform} image, not {want}",
                         "drop --arch or choose the matching image")


def flatten_image(image: oci.OciImage, work: Path) -> Flattener:
    """Merge all layers of ``image``; decompressed copies of the layers live in ``work``."""
    flat = Flattener()
    for number, layer in enumerate(image.layers, start=1):
        plain = oci.open_plain_layer(image, layer, work)
        flat.add_layer(plain.path, f"layer {number} ({layer.digest[:19]})")
    return flat


def _image_arch(image: oci.OciImage) -> str | None:
    return image.platform.architecture if image.platform else None


def _with_metadata(image: oci.OciImage, ref: ImageRef, work: Path) -> Flattener:
    flat = flatten_image(image, work)
    meta = apptainer.Metadata(image.config, _image_arch(image), _definition(ref))
    layer = work / "apptainer-metadata.tar"
    layer.write_bytes(apptainer.metadata_layer(flat, meta))
    flat.add_layer(layer, "Apptainer metadata")
    report_notes(flat)
    return flat


def _definition(ref: ImageRef) -> str:
    bootstrap = {"docker": "docker", "oci": "oci", "oci-archive": "oci-archive",
                 "docker-archive": "docker-archive"}.get(ref.transport, "localimage")
    where = ref.location if ref.transport != "oci" else str(ref).removeprefix("oci:")
    return apptainer.deffile(bootstrap, where)


def _oci_to_sandbox(image: oci.OciImage, ref: ImageRef, target: Path, work: Path
                    ) -> _Produced:
    flat = _with_metadata(image, ref, work)
    staged = work / "rootfs"
    unpack_tree(flat, staged).warn_changes()
    os.rename(staged, target)
    return _Produced(None, image.manifest_digest, image.platform)


def _oci_to_sif(image: oci.OciImage, ref: ImageRef, target: Path, work: Path, level: int
                ) -> _Produced:
    flat = _with_metadata(image, ref, work)
    squash = work / "rootfs.sqfs"
    if tools.have_tool("tar2sqfs"):
        squashfs.stream_to_squashfs(flat, squash, level)
    else:
        staged = work / "rootfs"
        unpack_tree(flat, staged).warn_changes()
        squashfs.squash_directory(staged, squash, level=level)
    definition = _definition(ref)
    arch = _image_arch(image) or host_arch().oci
    objects = [
        sif.NewObject(sif.DATA_DEFFILE, definition.encode()),
        sif.NewObject(sif.DATA_GENERIC_JSON, apptainer.inspect_metadata(
            image.config, arch, definition).encode(), name=INSPECT_NAME),
        sif.NewObject(sif.DATA_GENERIC_JSON, _config_bytes(image.config), name=OCI_CONFIG_NAME),
        sif.primary_squashfs(squash, sif_arch_code(arch)),
    ]
    return _write_sif_file(objects, target, work, image.platform or platform_for_oci(arch))


def _config_bytes(config: dict[str, Any]) -> bytes:
    return json.dumps(config, separators=(",", ":"), sort_keys=True).encode()


def sif_arch_code(oci_arch: str) -> str:
    for code, name in SIF_ARCH_NAMES.items():
        if name == oci_arch:
            return code
    return "00"


def _write_sif_file(objects: list[sif.NewObject], target: Path, work: Path,
                    platform: Platform | None) -> _Produced:
    staged = work / "image.sif"
    writer = sif.SifWriter()
    if os.environ.get("SOURCE_DATE_EPOCH"):
        writer = sif.SifWriter(timestamp=int(os.environ["SOURCE_DATE_EPOCH"]))
    writer.write(staged, objects)
    os.rename(staged, target)
    return _Produced(target, platform=platform)


def _oci_to_oci(image: oci.OciImage, target: ImageRef, access: Access, work: Path
                ) -> _Produced:
    layout = work / "single"
    _single_image_layout(image, layout)
    _store(layout, target, access, work)
    return _Produced(_file_output(target), image.manifest_digest, image.platform)


def _single_image_layout(image: oci.OciImage, layout: Path) -> None:
    """A layout holding only the chosen platform's manifest (blobs hard-linked, not copied)."""
    digests = [image.manifest_digest, image.manifest["config"]["digest"]]
    digests += [layer.digest for layer in image.layers]
    for digest in digests:
        source, dest = image.blob_path(digest), oci.blob_path(layout, digest)
        dest.parent.mkdir(parents=True, exist_ok=True)
        try:
            os.link(source, dest)
        except OSError:
            dest.write_bytes(source.read_bytes())
    size = image.blob_path(image.manifest_digest).stat().st_size
    oci.write_layout_index(layout, image.manifest_digest, size, DEFAULT_TAG, image.platform)


def _store(layout: Path, target: ImageRef, access: Access, work: Path) -> None:
    if target.transport == "oci":
        store_from_layout(layout, DEFAULT_TAG,
                          ImageRef("oci", f"{target.location}:{target.tag or DEFAULT_TAG}"),
                          access)
        return
    if target.transport in ("oci-archive", "docker-archive"):
        staged = work / "archive.tar"
        store_from_layout(layout, DEFAULT_TAG, ImageRef(target.transport, str(staged)), access)
        os.rename(staged, target.path)
        return
    store_from_layout(layout, DEFAULT_TAG, target, access)


def _file_output(target: ImageRef) -> Path | None:
    return target.path if target.transport in FILE_OUTPUTS else None


# --- SIF and sandbox sources ------------------------------------------------------------


def _primary(path: Path) -> tuple[sif.SifImage, sif.Descriptor]:
    image = sif.read_sif(path)
    part = image.primary_partition()
    if part is None:
        raise ImageError(f"{path} has no primary system partition", "it holds no root fs")
    if part.fs_type != sif.FS_SQUASHFS:
        kind = sif.FS_NAMES.get(part.fs_type, str(part.fs_type))
        raise ImageError(f"{path}: the primary partition is {kind}, not squashfs",
                         "only squashfs SIF images can be converted (encrypted ones cannot)")
    squashfs.check_squashfs_magic(path, part.offset)
    return image, part


def _sif_to_sandbox(path: Path, staged: Path) -> Path:
    _image, part = _primary(path)
    squashfs.unsquash(path, staged, part.offset)
    return staged


def _sif_arch(path: Path) -> str:
    _image, part = _primary(path)
    return arch_from_sif_code(part.part_arch_code)


def _config_from_sif(path: Path) -> dict[str, Any]:
    image, part = _primary(path)
    desc = image.find(sif.DATA_GENERIC_JSON, OCI_CONFIG_NAME)
    if desc is None:
        return _default_config(arch_from_sif_code(part.part_arch_code))
    try:
        config = json.loads(image.read_object(desc))
    except ValueError:
        raise ImageError(f"{path}: the {OCI_CONFIG_NAME} object is not valid JSON") from None
    if not isinstance(config, dict):
        raise ImageError(f"{path}: the {OCI_CONFIG_NAME} object is not a JSON object")
    return config


def _default_config(arch: str | None) -> dict[str, Any]:
    platform = parse_platform(arch) if arch and arch != "unknown" else \
        parse_platform(host_arch().name)
    config: dict[str, Any] = {"architecture": platform.architecture, "os": platform.os,
                              "config": {"Env": ["PATH=/usr/local/sbin:/usr/local/bin:"
                                                 "/usr/sbin:/usr/bin:/sbin:/bin"]}}
    if platform.variant:
        config["variant"] = platform.variant
    return config


def _sandbox_to_oci(root: Path, config: dict[str, Any], target: ImageRef, access: Access,
                    work: Path) -> _Produced:
    if not root.is_dir():
        raise ImageError(f"sandbox {root} is not a directory")
    layout = work / "layout"
    direct = target.transport == "oci"
    tag = (target.tag or DEFAULT_TAG) if direct else DEFAULT_TAG
    digest = write_single_layer_layout(root, config, layout, work, tag)
    if direct:
        os.rename(layout, target.path)
    else:
        _store(layout, target, access, work)
    return _Produced(_file_output(target), digest, _config_platform(config))


def _config_platform(config: dict[str, Any]) -> Platform | None:
    if not config.get("architecture"):
        return None
    return Platform(config.get("os", "linux"), config["architecture"], config.get("variant"))


def write_single_layer_layout(root: Path, config: dict[str, Any], layout: Path, work: Path,
                              tag: str = DEFAULT_TAG) -> str:
    """An OCI layout with the whole tree as one gzip layer; returns the manifest digest."""
    plain_tar = work / "layer.tar"
    with open(plain_tar, "wb") as out:
        tar_directory(root, out)
    packed = work / "layer.tar.gz"
    layer_digest, diff_id, layer_size = oci.gzip_file(plain_tar, packed)
    plain_tar.unlink()
    oci.add_blob_file(layout, packed, layer_digest)
    config = dict(config)
    config["rootfs"] = {"type": "layers", "diff_ids": [diff_id]}
    config.pop("history", None)  # the old history no longer matches the single layer
    config_digest, config_size = oci.write_blob(layout, _config_bytes(config))
    manifest = {"schemaVersion": 2, "mediaType": oci.OCI_MANIFEST,
                "config": {"mediaType": oci.OCI_CONFIG, "digest": config_digest,
                           "size": config_size},
                "layers": [{"mediaType": oci.OCI_LAYER_GZIP, "digest": layer_digest,
                            "size": layer_size}]}
    manifest_digest, manifest_size = oci.write_blob(layout, json.dumps(manifest).encode())
    oci.write_layout_index(layout, manifest_digest, manifest_size, tag,
                           _config_platform(config))
    return manifest_digest


def _sandbox_to_sif(root: Path, target: Path, arch: str | None, work: Path, level: int
                    ) -> _Produced:
    if not root.is_dir():
        raise ImageError(f"sandbox {root} is not a directory")
    squash = work / "rootfs.sqfs"
    squashfs.squash_directory(root, squash, all_root=os.geteuid() != 0, level=level)
    platform = parse_platform(arch) if arch else parse_platform(host_arch().name)
    definition = apptainer.deffile("localimage", str(root))
    objects = [sif.NewObject(sif.DATA_DEFFILE, definition.encode()),
               sif.primary_squashfs(squash, sif_arch_code(platform.architecture))]
    return _write_sif_file(objects, target, work, platform)


# --- results ----------------------------------------------------------------------------


def _finish(source: ImageRef, target: ImageRef, produced: _Produced, seconds: float
            ) -> ConvertResult:
    fmt = output_format(target)
    arch = centre_name(produced.platform)
    platform = str(produced.platform) if produced.platform else None
    if produced.path is None:
        return ConvertResult(str(source), str(target), fmt, produced.digest, None, None, None,
                             [], round(seconds, 3), arch, platform)
    sha256, md5, files = write_checksum_files(produced.path)
    return ConvertResult(str(source), str(target), fmt, f"sha256:{sha256}", sha256, md5,
                         produced.path.stat().st_size, [str(f) for f in files],
                         round(seconds, 3), arch, platform)


def output_format(target: ImageRef) -> str:
    """What the destination holds: a docker-archive is Docker's format, not OCI's."""
    return "docker-archive" if target.transport == "docker-archive" else target.format


__all__ = ["ConvertResult", "convert", "flatten_image"]
