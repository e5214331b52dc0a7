"""SIF (Singularity Image Format, spec "01") reader and writer, in plain Python.

Layout facts are in FORMATS.md §1: a 128-byte header, a fixed descriptor table, then the data
objects. Objects we do not interpret (signatures, SBOMs, OCI blobs...) are carried as opaque
bytes, so a rewrite keeps them byte for byte.
"""

from __future__ import annotations

import os
import struct
import time
import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import BinaryIO

from hepbuild.errors import ImageError
from hepbuild.platforms import arch_from_sif_code

HEADER = struct.Struct("<32s10s3s3s16sqqqqqqqq")
DESCRIPTOR = struct.Struct("<iBIIIqqqqqqq128s384s")
MAGIC = b"SIF_MAGIC\0"
VERSION = b"01\0"
GROUP_MASK = 0xF0000000
DEFAULT_DESCRIPTORS_OFFSET = 4096
DEFAULT_CAPACITY = 48
PARTITION_ALIGN = 4096
APPTAINER_LAUNCH = "#!/usr/bin/env run-singularity\n"

DATA_DEFFILE = 0x4001
DATA_ENVVAR = 0x4002
DATA_LABELS = 0x4003
DATA_PARTITION = 0x4004
DATA_SIGNATURE = 0x4005
DATA_GENERIC_JSON = 0x4006
DATA_GENERIC = 0x4007
DATA_CRYPTO_MESSAGE = 0x4008
DATA_SBOM = 0x4009
DATA_OCI_ROOT_INDEX = 0x400A
DATA_OCI_BLOB = 0x400B

TYPE_NAMES = {
    DATA_DEFFILE: "Def.FILE", DATA_ENVVAR: "Env.Vars", DATA_LABELS: "JSON.Labels",
    DATA_PARTITION: "FS", DATA_SIGNATURE: "Signature", DATA_GENERIC_JSON: "JSON.Generic",
    DATA_GENERIC: "Generic/Raw", DATA_CRYPTO_MESSAGE: "Cryptographic Message",
    DATA_SBOM: "SBOM", DATA_OCI_ROOT_INDEX: "OCI.RootIndex", DATA_OCI_BLOB: "OCI.Blob",
}
FS_SQUASHFS = 1
FS_NAMES = {1: "Squashfs", 2: "Ext3", 3: "Archive", 4: "Raw", 5: "Encrypted squashfs"}
PART_SYSTEM, PART_PRIMSYS, PART_DATA, PART_OVERLAY = 1, 2, 3, 4
PART_NAMES = {1: "System", 2: "*System", 3: "Data", 4: "Overlay"}
HASH_NAMES = {1: "SHA-256", 2: "SHA-384", 3: "SHA-512", 4: "BLAKE2s-256", 5: "BLAKE2b-256"}
CRYPT_FORMATS = {1: "OpenPGP", 2: "PEM"}
CRYPT_MESSAGES = {0x100: "Clear Signature", 0x200: "RSA-OAEP"}
SBOM_FORMATS = {
    1: "cyclonedx-json", 2: "cyclonedx-xml", 3: "github-json", 4: "spdx-json", 5: "spdx-rdf",
    6: "spdx-tag-value", 7: "spdx-yaml", 8: "syft-json",
}


@dataclass(frozen=True)
class Header:
    launch_script: str
    arch_code: str
    id: uuid.UUID
    created_at: int
    modified_at: int
    descriptors_free: int
    descriptors_total: int
    descriptors_offset: int
    descriptors_size: int
    data_offset: int
    data_size: int

    @property
    def arch(self) -> str:
        return arch_from_sif_code(self.arch_code)


@dataclass(frozen=True)
class Descriptor:
    data_type: int
    id: int
    group_id: int  # 0 = no group
    linked_id: int  # 0 = no link
    link_is_group: bool
    offset: int
    size: int
    size_with_padding: int
    created_at: int
    modified_at: int
    name: str
    extra: bytes

    @property
    def type_name(self) -> str:
        return TYPE_NAMES.get(self.data_type, f"Unknown(0x{self.data_type:x})")

    @property
    def fs_type(self) -> int:
        return struct.unpack_from("<i", self.extra, 0)[0]

    @property
    def part_type(self) -> int:
        return struct.unpack_from("<i", self.extra, 4)[0]

    @property
    def part_arch_code(self) -> str:
        return _cstr(self.extra[8:11])

    def describe_type(self) -> str:
        """The TYPE column of ``siftool list``."""
        extra = self.extra
        if self.data_type == DATA_PARTITION:
            fs = FS_NAMES.get(self.fs_type, "Unknown")
            part = PART_NAMES.get(self.part_type, "Unknown")
            return f"FS ({fs}/{part}/{arch_from_sif_code(self.part_arch_code)})"
        if self.data_type == DATA_SIGNATURE:
            return f"Signature ({HASH_NAMES.get(_int32(extra, 0), 'Unknown')})"
        if self.data_type == DATA_CRYPTO_MESSAGE:
            fmt = CRYPT_FORMATS.get(_int32(extra, 0), "Unknown")
            msg = CRYPT_MESSAGES.get(_int32(extra, 4), "Unknown")
            return f"Cryptographic Message ({fmt}/{msg})"
        if self.data_type == DATA_SBOM:
            return f"SBOM ({SBOM_FORMATS.get(_int32(extra, 0), 'unknown')})"
        return self.type_name

    def info_fields(self) -> list[tuple[str, str]]:
        """The fields ``siftool info`` shows for this object, in its order."""
        rows = [("Data Type", self.type_name), ("ID", str(self.id)),
                ("Group ID", str(self.group_id) if self.group_id else "NONE"),
                ("Linked ID", self._link_text()), ("Offset", str(self.offset)),
                ("Size", str(self.size))]
        rows += _time_rows(self.created_at, self.modified_at)
        if self.name:
            rows.append(("Name", self.name))
        return rows + self._extra_rows()

    def _link_text(self) -> str:
        if not self.linked_id:
            return "NONE"
        return f"{self.linked_id} (G)" if self.link_is_group else str(self.linked_id)

    def _extra_rows(self) -> list[tuple[str, str]]:
        extra = self.extra
        if self.data_type == DATA_PARTITION:
            return [("Filesystem Type", FS_NAMES.get(self.fs_type, "Unknown")),
                    ("Partition Type", PART_NAMES.get(self.part_type, "Unknown")),
                    ("Architecture", arch_from_sif_code(self.part_arch_code))]
        if self.data_type == DATA_SIGNATURE:
            entity = extra[4:24]
            rows = [("Hash Type", HASH_NAMES.get(_int32(extra, 0), "Unknown"))]
            if any(entity):
                rows.append(("Entity", entity.hex().upper()))
            return rows
        if self.data_type == DATA_CRYPTO_MESSAGE:
            return [("Format Type", CRYPT_FORMATS.get(_int32(extra, 0), "Unknown")),
                    ("Message Type", CRYPT_MESSAGES.get(_int32(extra, 4), "Unknown"))]
        if self.data_type == DATA_SBOM:
            return [("Format", SBOM_FORMATS.get(_int32(extra, 0), "unknown"))]
        if self.data_type in (DATA_OCI_BLOB, DATA_OCI_ROOT_INDEX):
            return [("Digest", _cstr(extra))]
        return []


@dataclass(frozen=True)
class SifImage:
    path: Path
    header: Header
    descriptors: tuple[Descriptor, ...]

    def primary_partition(self) -> Descriptor | None:
        for desc in self.descriptors:
            if desc.data_type == DATA_PARTITION and desc.part_type == PART_PRIMSYS:
                return desc
        return None

    def find(self, data_type: int, name: str | None = None) -> Descriptor | None:
        for desc in self.descriptors:
            if desc.data_type == data_type and (name is None or desc.name == name):
                return desc
        return None

    def read_object(self, desc: Descriptor) -> bytes:
        with open(self.path, "rb") as fh:
            fh.seek(desc.offset)
            data = fh.read(desc.size)
        if len(data) != desc.size:
            raise ImageError(f"{self.path}: object {desc.id} is cut short (file truncated)")
        return data


def _int32(data: bytes, offset: int) -> int:
    return struct.unpack_from("<i", data, offset)[0]


def _cstr(raw: bytes) -> str:
    return raw.split(b"\0", 1)[0].decode("utf-8", "replace")


def _time_rows(created: int, modified: int) -> list[tuple[str, str]]:
    rows = []
    if created > 0:
        rows.append(("Created At", format_time(created)))
    if modified > 0:
        rows.append(("Modified At", format_time(modified)))
    return rows


def format_time(seconds: int) -> str:
    """A SIF timestamp as siftool prints it; one the C library cannot convert is shown raw."""
    try:
        return time.strftime("%Y-%m-%d %H:%M:%S +0000 UTC", time.gmtime(seconds))
    except (OverflowError, OSError, ValueError):
        return f"{seconds} (invalid time)"


# --- reading ------------------------------------------------------------------------------


def read_sif(path: Path) -> SifImage:
    """Parse header and descriptors. Foreign, truncated or inconsistent files are refused."""
    path = Path(path)
    try:
        size = path.stat().st_size
        with open(path, "rb") as fh:
            raw_header = fh.read(HEADER.size)
            header = _parse_header(path, raw_header)
            _check_table_inside(path, header, size)
            table = _read_table(path, fh, header)
    except OSError as exc:
        raise ImageError(f"cannot read SIF file {path}: {exc.strerror}") from None
    descriptors = tuple(_parse_descriptors(path, table, header))
    for desc in descriptors:
        if desc.offset < 0 or desc.size < 0 or desc.offset + desc.size > size:
            raise ImageError(
                f"{path}: object {desc.id} ({desc.type_name}) ends at byte "
                f"{desc.offset + desc.size} but the file has {size} bytes",
                "the file is truncated or corrupted; fetch or build it again",
            )
    return SifImage(path, header, descriptors)


def _parse_header(path: Path, raw: bytes) -> Header:
    if len(raw) < HEADER.size:
        raise ImageError(f"{path} is not a SIF file: only {len(raw)} bytes long")
    fields = HEADER.unpack(raw)
    if fields[1] != MAGIC:
        raise ImageError(f"{path} is not a SIF file (no SIF_MAGIC at byte 32)")
    if fields[2] != VERSION:
        raise ImageError(f"{path}: unsupported SIF version {_cstr(fields[2])!r}; only 01 is read")
    (launch, _m, _v, arch, raw_id, created, modified, free, total, d_off, d_size, data_off,
     data_size) = fields
    if total < 0 or total > 1_000_000 or d_off < HEADER.size or d_size < total * DESCRIPTOR.size:
        raise ImageError(f"{path}: corrupted SIF header (descriptor table fields do not agree)")
    return Header(_cstr(launch), _cstr(arch), uuid.UUID(bytes=raw_id), created, modified, free,
                  total, d_off, d_size, data_off, data_size)


def _check_table_inside(path: Path, header: Header, size: int) -> None:
    # A wild offset would otherwise surface as a bare "Invalid argument" from seek().
    if header.descriptors_offset >= size:
        raise ImageError(
            f"{path}: corrupted SIF header (descriptor table at byte "
            f"{header.descriptors_offset} lies outside the {size}-byte file)",
            "the file is truncated or corrupted; fetch or build it again")


def _read_table(path: Path, fh: BinaryIO, header: Header) -> bytes:
    fh.seek(header.descriptors_offset)
    want = header.descriptors_total * DESCRIPTOR.size
    table = fh.read(want)
    if len(table) != want:
        raise ImageError(f"{path}: truncated SIF file (descriptor table cut short)")
    return table


def _parse_descriptors(path: Path, table: bytes, header: Header) -> Iterable[Descriptor]:
    for slot in range(header.descriptors_total):
        fields = DESCRIPTOR.unpack_from(table, slot * DESCRIPTOR.size)
        (dtype, used, obj_id, group, link, offset, size, swp, created, modified, _uid, _gid,
         name, extra) = fields
        if not used:
            continue
        if group & GROUP_MASK != GROUP_MASK:
            raise ImageError(f"{path}: corrupted descriptor in slot {slot + 1} (bad group id)")
        link_is_group = bool(link & GROUP_MASK)
        yield Descriptor(dtype, obj_id, group & ~GROUP_MASK, link & ~GROUP_MASK if link_is_group
                         else link, link_is_group, offset, size, swp, created, modified,
                         _cstr(name), extra)


def render_list(image: SifImage) -> str:
    """The same text ``siftool list`` prints."""
    rule = "-" * 78
    lines = [rule, f"{'ID':<5}|{'GROUP':<8}|{'LINK':<8}|{'SIF POSITION (start-end)':<26}|TYPE",
             rule]
    for d in image.descriptors:
        group = str(d.group_id) if d.group_id else "NONE"
        link = "NONE" if not d.linked_id else (
            f"{d.linked_id:<3} (G)" if d.link_is_group else str(d.linked_id))
        pos = f"{d.offset}-{d.offset + d.size}"
        lines.append(f"{d.id:<5}|{group:<8}|{link:<8}|{pos:<26}|{d.describe_type()}")
    return "\n".join(lines) + "\n"


def header_fields(image: SifImage) -> list[tuple[str, str]]:
    """The fields ``siftool header`` shows, in its order."""
    h = image.header
    rows: list[tuple[str, str]] = []
    if h.launch_script:
        rows.append(("Launch Script", h.launch_script.rstrip("\n")))
    rows.append(("Version", "01"))
    if h.arch_code not in ("", "00"):
        rows.append(("Primary Architecture", h.arch))
    if h.id.int:
        rows.append(("ID", str(h.id)))
    rows += _time_rows(h.created_at, h.modified_at)
    rows += [("Descriptors Free", str(h.descriptors_free)),
             ("Descriptors Total", str(h.descriptors_total)),
             ("Descriptors Offset", str(h.descriptors_offset)),
             ("Descriptors Size", _go_size(h.descriptors_size)),
             ("Data Offset", str(h.data_offset)), ("Data Size", _go_size(h.data_size))]
    return rows


def _go_size(size: int) -> str:
    """Sizes as siftool prints them: whole units, 1024-based."""
    value = float(size)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if value < 1024:
            return f"{int(value + 0.5)} {unit}"
        value /= 1024
    return f"{int(value + 0.5)} TiB"


# --- writing ------------------------------------------------------------------------------


@dataclass(frozen=True)
class NewObject:
    """An object to place into a new SIF. ``data`` or ``source`` (copied from a file)."""

    data_type: int
    data: bytes = b""
    source: Path | None = None
    name: str = ""
    group_id: int = 1
    linked_id: int = 0
    link_is_group: bool = False
    extra: bytes = b""
    align: int = 0
    source_offset: int = 0
    source_size: int | None = None
    created_at: int | None = None  # None: the writer's timestamp
    modified_at: int | None = None


def partition_extra(arch_code: str, fs_type: int = FS_SQUASHFS, part_type: int = PART_PRIMSYS
                    ) -> bytes:
    return struct.pack("<ii3s", fs_type, part_type, arch_code.encode() + b"\0")


def primary_squashfs(source: Path, arch_code: str, offset: int = 0,
                     size: int | None = None) -> NewObject:
    return NewObject(DATA_PARTITION, source=source, extra=partition_extra(arch_code),
                     align=PARTITION_ALIGN, source_offset=offset, source_size=size)


@dataclass
class _Placed:
    obj: NewObject
    offset: int
    size: int
    padding: int


@dataclass
class SifWriter:
    """Build a SIF at ``path``: objects are laid out like the Go library lays them out."""

    launch_script: str = APPTAINER_LAUNCH
    image_id: uuid.UUID = field(default_factory=uuid.uuid4)
    timestamp: int = field(default_factory=lambda: int(time.time()))
    capacity: int = DEFAULT_CAPACITY

    def write(self, path: Path, objects: list[NewObject]) -> None:
        if len(self.launch_script.encode()) >= 32:
            raise ImageError("SIF launch script must be shorter than 32 bytes")
        if len(objects) > self.capacity:
            raise ImageError(f"{len(objects)} objects do not fit {self.capacity} descriptors")
        data_offset = DEFAULT_DESCRIPTORS_OFFSET + self.capacity * DESCRIPTOR.size
        placed = _place(objects, data_offset)
        with open(path, "wb") as out:
            out.write(self._header(placed, data_offset))
            out.seek(DEFAULT_DESCRIPTORS_OFFSET)
            out.write(self._table(placed))
            for item in placed:
                out.seek(item.offset)
                _write_payload(out, item)
            out.truncate(placed[-1].offset + placed[-1].size if placed else data_offset)

    def _header(self, placed: list[_Placed], data_offset: int) -> bytes:
        arch = "00"
        for item in placed:
            if item.obj.data_type == DATA_PARTITION and _is_primary(item.obj):
                arch = item.obj.extra[8:10].decode()
        end = placed[-1].offset + placed[-1].size if placed else data_offset
        return HEADER.pack(
            self.launch_script.encode(), MAGIC, VERSION, arch.encode() + b"\0",
            self.image_id.bytes, self.timestamp, self.timestamp, self.capacity - len(placed),
            self.capacity, DEFAULT_DESCRIPTORS_OFFSET, self.capacity * DESCRIPTOR.size,
            data_offset, end - data_offset)

    def _table(self, placed: list[_Placed]) -> bytes:
        table = bytearray()
        for slot, item in enumerate(placed):
            obj = item.obj
            link = obj.linked_id | GROUP_MASK if obj.link_is_group else obj.linked_id
            table += DESCRIPTOR.pack(
                obj.data_type, 1, slot + 1, obj.group_id | GROUP_MASK, link, item.offset,
                item.size, item.size + item.padding, _or(obj.created_at, self.timestamp),
                _or(obj.modified_at, self.timestamp), 0, 0,
                _fixed(obj.name, 128, "object name"), obj.extra.ljust(384, b"\0"))
        return bytes(table.ljust(self.capacity * DESCRIPTOR.size, b"\0"))


def _or(value: int | None, default: int) -> int:
    return default if value is None else value


def _is_primary(obj: NewObject) -> bool:
    return struct.unpack_from("<i", obj.extra.ljust(12, b"\0"), 4)[0] == PART_PRIMSYS


def _fixed(text: str, size: int, what: str) -> bytes:
    raw = text.encode()
    if len(raw) > size:
        raise ImageError(f"SIF {what} {text!r} is longer than {size} bytes")
    return raw


def _object_size(obj: NewObject) -> int:
    if obj.source is None:
        return len(obj.data)
    if obj.source_size is not None:
        return obj.source_size
    return obj.source.stat().st_size - obj.source_offset


def _place(objects: list[NewObject], data_offset: int) -> list[_Placed]:
    placed, cursor = [], data_offset
    for obj in objects:
        start = _align_up(cursor, obj.align)
        size = _object_size(obj)
        placed.append(_Placed(obj, start, size, start - cursor))
        cursor = start + size
    return placed


def _align_up(value: int, align: int) -> int:
    return value if align <= 1 else (value + align - 1) // align * align


def _write_payload(out: BinaryIO, item: _Placed) -> None:
    obj = item.obj
    if obj.source is None:
        out.write(obj.data)
        return
    out.flush()
    with open(obj.source, "rb") as src:
        copy_range(src.fileno(), out.fileno(), obj.source_offset, item.offset, item.size)


def copy_range(src_fd: int, dst_fd: int, src_off: int, dst_off: int, count: int) -> None:
    """Copy bytes between files in the kernel (copy_file_range), falling back to pread."""
    done = 0
    try:
        while done < count:
            n = os.copy_file_range(src_fd, dst_fd, count - done, src_off + done, dst_off + done)
            if n == 0:
                break
            done += n
    except OSError:
        pass  # another filesystem or an old kernel: the plain loop below finishes the job
    while done < count:
        chunk = os.pread(src_fd, min(1 << 20, count - done), src_off + done)
        if not chunk:
            raise ImageError("source file shrank while it was copied into the SIF")
        os.pwrite(dst_fd, chunk, dst_off + done)
        done += len(chunk)
    if done < count:
        raise ImageError("source file shrank while it was copied into the SIF")


def _original_alignment(desc: Descriptor) -> int:
    """Keep an object's alignment: partitions, and whatever the first writer aligned."""
    aligned = desc.offset % PARTITION_ALIGN == 0
    return PARTITION_ALIGN if desc.data_type == DATA_PARTITION or aligned else 0


def rewrite_sif(image: SifImage, path: Path, replace_objects: dict[int, NewObject]) -> None:
    """Write ``image`` again with some objects replaced; the others are copied byte for byte."""
    objects = []
    for desc in image.descriptors:
        obj = replace_objects.get(desc.id) or NewObject(
            desc.data_type, source=image.path, source_offset=desc.offset, source_size=desc.size,
            name=desc.name, group_id=desc.group_id, linked_id=desc.linked_id,
            link_is_group=desc.link_is_group, extra=desc.extra, created_at=desc.created_at,
            modified_at=desc.modified_at,
            align=_original_alignment(desc))
        objects.append(replace(obj))
    writer = SifWriter(image.header.launch_script, image.header.id, image.header.created_at,
                       image.header.descriptors_total)
    writer.write(path, objects)
