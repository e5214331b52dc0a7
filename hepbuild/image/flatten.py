"""Layer flattening with OCI semantics, into one merged tree of tar members.

All layers are read into an in-memory tree first (headers only; file data stays in the layer
tars and is read later by offset). Whiteouts and opaque markers of a layer are applied before
that layer's own entries, so their position in the tar does not matter and they only ever hide
lower layers. Hard links point at the *content* they were made for: if the original path is
deleted or replaced later, the survivor keeps the old bytes (case H1).

The merged tree is then emitted either as one tar stream (for tar2sqfs) or onto disk
(``unpack.py``). Both walk it in the same sorted, parents-first order.
"""

from __future__ import annotations

import tarfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, BinaryIO

from hepbuild.errors import ImageError
from hepbuild.output import warn

WHITEOUT = ".wh."
OPAQUE = ".wh..wh..opq"
MAX_SYMLINK_HOPS = 40


@dataclass(eq=False)
class Node:
    """One path of the merged tree. ``info`` is None for a directory nobody described."""

    info: tarfile.TarInfo | None
    layer: int = -1  # index into the flattener's layer files; -1 for implicit dirs
    children: dict[str, Node] | None = None
    content: Node | None = None  # for hard links: the node whose bytes this path shares

    @property
    def is_dir(self) -> bool:
        return self.children is not None


def _implicit_dir() -> Node:
    return Node(None, -1, {})


@dataclass
class Flattener:
    """Merge layer tars (uncompressed, seekable) into one tree."""

    layer_files: list[Path] = field(default_factory=list)
    root: Node = field(default_factory=_implicit_dir)
    notes: list[str] = field(default_factory=list)

    def add_layer(self, path: Path, label: str) -> None:
        index = len(self.layer_files)
        self.layer_files.append(path)
        members = _read_members(path, label)
        entries, whiteouts, opaques = self._classify(members, label)
        for parts in opaques:
            self._clear_lower_children(parts)
        for parts in whiteouts:
            self._remove(parts)
        for parts, info in entries:
            self._insert(parts, info, index, label)

    # -- one layer's members --------------------------------------------------------------

    def _classify(self, members: list[tarfile.TarInfo], label: str) -> tuple[
            list[tuple[list[str], tarfile.TarInfo]], list[list[str]], list[list[str]]]:
        """Split a layer into (entries, whiteout paths, opaque directories)."""
        entries: list[tuple[list[str], tarfile.TarInfo]] = []
        whiteouts: list[list[str]] = []
        opaques: list[list[str]] = []
        for info in members:
            parts = member_parts(info.name, label)
            if not parts:
                entries.append((parts, info))  # the root directory itself
                continue
            base = parts[-1]
            if base == OPAQUE:
                opaques.append(parts[:-1])
            elif base == WHITEOUT:
                self.notes.append(f"{label}: kept bare whiteout name {info.name!r} as a file")
                entries.append((parts, info))
            elif base.startswith(WHITEOUT + WHITEOUT):
                continue  # other AUFS metadata (.wh..wh.plnk and the like) is not content
            elif base.startswith(WHITEOUT):
                whiteouts.append(parts[:-1] + [base[len(WHITEOUT):]])
            else:
                entries.append((parts, info))
        return entries, whiteouts, opaques

    # Whiteouts name paths lexically: a lower-layer symlink on the way is not followed (as in
    # overlayfs, where an upper directory simply replaces a lower symlink).

    def _clear_lower_children(self, parts: list[str]) -> None:
        node = self._node_at(parts)
        if node is not None and node.is_dir:
            node.children = {}

    def _remove(self, parts: list[str]) -> None:
        parent = self._node_at(parts[:-1])
        if parent is not None and parent.children is not None:
            parent.children.pop(parts[-1], None)

    def _insert(self, parts: list[str], info: tarfile.TarInfo, layer: int, label: str) -> None:
        if not parts:
            if info.isdir():
                self.root.info, self.root.layer = info, layer
            return
        parent = self._ensure_dir(parts[:-1], label, info.name)
        name = parts[-1]
        old = parent.get(name)
        if info.isdir():
            if old is not None and old.is_dir:
                old.info, old.layer = info, layer  # attributes only; children stay
            else:
                parent[name] = Node(info, layer, {})
            return
        if info.issparse():
            # offset_data of a GNU sparse member is the packed map, not the file's bytes
            raise ImageError(f"{label}: member {info.name!r} is a sparse file, which hepbuild "
                             "does not unpack", "rebuild the layer without sparse files")
        node = Node(info, layer)
        if info.islnk():
            node.content = self._link_target(info, label)
        elif info.type not in _SUPPORTED_TYPES:
            raise ImageError(f"{label}: member {info.name!r} has an unsupported tar type "
                             f"{info.type!r}")
        parent[name] = node

    def _link_target(self, info: tarfile.TarInfo, label: str) -> Node:
        parts = member_parts(info.linkname, label, what="hard link target of " + info.name)
        target = self._lookup(parts)
        if target is None or target.info is None:
            raise ImageError(f"{label}: hard link {info.name!r} points at {info.linkname!r}, "
                             "which does not exist in this or a lower layer")
        if target.is_dir:
            raise ImageError(f"{label}: hard link {info.name!r} points at a directory")
        if target.info.issym():
            raise ImageError(f"{label}: hard link {info.name!r} points at a symlink, "
                             "which hepbuild does not support")
        return target.content or target

    # -- walking the tree -----------------------------------------------------------------

    def _lookup(self, parts: list[str]) -> Node | None:
        resolved = self._resolve(parts[:-1], create=False) if parts else []
        if resolved is None:
            return None
        node = self._node_at(resolved)
        if node is None or not parts:
            return node
        if node.children is None:
            return None
        return node.children.get(parts[-1])

    def _node_at(self, parts: list[str]) -> Node | None:
        node = self.root
        for name in parts:
            if node.children is None:
                return None
            child = node.children.get(name)
            if child is None:
                return None
            node = child
        return node

    def _ensure_dir(self, parts: list[str], label: str, member: str) -> dict[str, Node]:
        resolved = self._resolve(parts, create=True, label=label, member=member)
        assert resolved is not None
        node = self._node_at(resolved)
        assert node is not None and node.children is not None
        return node.children

    def _resolve(self, parts: list[str], create: bool, label: str = "",
                 member: str = "") -> list[str] | None:
        """Follow symlinks inside the root for the directories of a path (never outside)."""
        done: list[str] = []
        todo = list(parts)
        hops = 0
        while todo:
            name = todo.pop(0)
            parent = self._node_at(done)
            assert parent is not None and parent.children is not None
            child = parent.children.get(name)
            if child is not None and child.info is not None and child.info.issym():
                hops += 1
                if hops > MAX_SYMLINK_HOPS:
                    raise ImageError(f"{label}: too many symlinks under member {member!r}")
                todo = _link_parts(done, child.info.linkname) + todo
                done = []
                continue
            if child is None or not child.is_dir:
                if not create:
                    return None
                if child is not None:
                    self.notes.append(f"{label}: {member!r} replaced the non-directory "
                                      f"{'/'.join(done + [name])!r} by a directory")
                child = _implicit_dir()
                parent.children[name] = child
            done.append(name)
        return done

    def walk(self) -> Iterator[tuple[str, Node]]:
        """Every node, parents before children, siblings sorted by name (bytes order)."""
        stack: list[tuple[str, Node]] = [("", self.root)]
        while stack:
            path, node = stack.pop()
            yield path, node
            if node.children:
                names = sorted(node.children, key=_sort_key, reverse=True)
                for name in names:
                    child_path = f"{path}/{name}" if path else name
                    stack.append((child_path, node.children[name]))


_SUPPORTED_TYPES = {
    tarfile.REGTYPE, tarfile.AREGTYPE, tarfile.SYMTYPE, tarfile.CHRTYPE, tarfile.BLKTYPE,
    tarfile.FIFOTYPE, tarfile.CONTTYPE, tarfile.LNKTYPE, tarfile.DIRTYPE,
}


def _sort_key(name: str) -> bytes:
    return name.encode("utf-8", "surrogateescape")


def _link_parts(base: list[str], target: str) -> list[str]:
    """Where a symlink's text points, as root-relative parts; ``..`` stops at the root."""
    start = [] if target.startswith("/") else list(base)
    for piece in target.split("/"):
        if piece in ("", "."):
            continue
        if piece == "..":
            if start:
                start.pop()
        else:
            start.append(piece)
    return start


def member_parts(name: str, label: str, what: str = "member") -> list[str]:
    """Split a member name; refuse ``..`` and absolute paths naming the member."""
    if name.startswith("/"):
        raise ImageError(f"{label}: {what} {name!r} has an absolute path; refused",
                         "layer members must be relative to the image root")
    parts = [p for p in name.split("/") if p not in ("", ".")]
    if ".." in parts:
        raise ImageError(f"{label}: {what} {name!r} leads outside the image root; refused",
                         "the layer is malformed or malicious")
    return parts


def _read_members(path: Path, label: str) -> list[tarfile.TarInfo]:
    if path.stat().st_size == 0:
        return []  # an empty blob is an empty layer (case E1)
    try:
        with tarfile.open(path, mode="r:", encoding="utf-8", errors="surrogateescape") as tf:
            return tf.getmembers()
    except tarfile.ReadError as exc:
        if _all_zero(path):
            return []
        raise ImageError(f"{label}: not a readable tar archive: {exc}") from None


def _all_zero(path: Path) -> bool:
    with open(path, "rb") as fh:
        while chunk := fh.read(1 << 16):
            if chunk.strip(b"\0"):
                return False
    return True


# --- emitting one tar stream ------------------------------------------------------------


@dataclass
class LayerReaders:
    """Open layer files, one handle each, for reading member data by offset."""

    paths: list[Path]
    handles: dict[int, BinaryIO] = field(default_factory=dict)

    def open_at(self, layer: int, offset: int) -> BinaryIO:
        handle = self.handles.get(layer)
        if handle is None:
            handle = open(self.paths[layer], "rb")  # noqa: SIM115 - closed in close()
            self.handles[layer] = handle
        handle.seek(offset)
        return handle

    def close(self) -> None:
        for handle in self.handles.values():
            handle.close()
        self.handles.clear()


def output_member(path: str, node: Node, first_path: dict[int, str]) -> tarfile.TarInfo:
    """The TarInfo to emit for ``node`` at ``path``; hard links only to paths emitted before."""
    source = node.content or node
    info = _copy_info(source.info if source.info is not None else None, node)
    info.name = path or "."
    if node.is_dir:
        info.type = tarfile.DIRTYPE
        info.size = 0
        return info
    if source.info is not None and source.info.isreg() or node.content is not None:
        key = id(source)
        if key in first_path:
            info.type, info.linkname, info.size = tarfile.LNKTYPE, first_path[key], 0
        else:
            first_path[key] = info.name
            info.type = tarfile.REGTYPE
    return info


def _copy_info(info: tarfile.TarInfo | None, node: Node) -> tarfile.TarInfo:
    copy = tarfile.TarInfo()
    if info is None:
        copy.type, copy.mode, copy.mtime = tarfile.DIRTYPE, 0o755, 0
        return copy
    for attr in ("mode", "uid", "gid", "size", "mtime", "type", "linkname", "uname", "gname",
                 "devmajor", "devminor"):
        setattr(copy, attr, getattr(info, attr))
    copy.pax_headers = {k: v for k, v in info.pax_headers.items() if k.startswith("SCHILY.xattr.")}
    return copy


def data_source(node: Node) -> tuple[int, tarfile.TarInfo] | None:
    source = node.content or node
    if source.info is None or not source.info.isreg():
        return None
    return source.layer, source.info


def write_tar(flat: Flattener, out: IO[bytes]) -> int:
    """Write the merged tree as one PAX tar to ``out``; returns the number of members."""
    readers = LayerReaders(flat.layer_files)
    first_path: dict[int, str] = {}
    count = 0
    try:
        with tarfile.open(fileobj=out, mode="w|", format=tarfile.PAX_FORMAT,
                          encoding="utf-8", errors="surrogateescape", bufsize=1 << 20) as tf:
            for path, node in flat.walk():
                info = output_member(path, node, first_path)
                source = data_source(node) if info.type == tarfile.REGTYPE else None
                if source is None:
                    tf.addfile(info)
                else:
                    tf.addfile(info, readers.open_at(source[0], source[1].offset_data))
                count += 1
    finally:
        readers.close()
    return count


def report_notes(flat: Flattener) -> None:
    for note in flat.notes:
        warn(note)
