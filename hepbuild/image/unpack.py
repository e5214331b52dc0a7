"""Writing a flattened tree onto disk, safely and as any user.

The target is a fresh directory. Every path comes from the merged tree, whose parents are
real directories we created ourselves (symlinks were resolved inside the root while
flattening), and files are opened with O_NOFOLLOW|O_EXCL, so nothing is written outside.

Modes: as root every mode, owner and setuid bit is kept exactly and device nodes are made.
As a normal user ownership becomes the caller's, directories get owner rwx and files owner
rw added (so the tree can be filled and deleted), setuid/setgid bits are dropped and device
nodes are skipped; each kind of change is reported once as a warning.
"""

from __future__ import annotations

import os
import stat
import tarfile
from dataclasses import dataclass, field
from pathlib import Path

from hepbuild.errors import ImageError
from hepbuild.image.flatten import Flattener, LayerReaders, Node, data_source, output_member
from hepbuild.image.sif import copy_range
from hepbuild.output import warn

XATTR_PREFIX = "SCHILY.xattr."


@dataclass
class UnpackReport:
    files: int = 0
    changes: dict[str, int] = field(default_factory=dict)

    def note(self, kind: str) -> None:
        self.changes[kind] = self.changes.get(kind, 0) + 1

    def warn_changes(self) -> None:
        for kind, count in sorted(self.changes.items()):
            warn(f"{kind} ({count} {'entry' if count == 1 else 'entries'})")


@dataclass
class _Pending:
    path: str
    mode: int
    mtime: float


def unpack_tree(flat: Flattener, target: Path) -> UnpackReport:
    """Create ``target`` (must not exist) and write the merged tree into it."""
    target.mkdir(mode=0o700)
    as_root = os.geteuid() == 0
    report = UnpackReport()
    readers = LayerReaders(flat.layer_files)
    dirs: list[_Pending] = []
    first_path: dict[int, str] = {}
    try:
        for rel, node in flat.walk():
            info = output_member(rel, node, first_path)
            dest = os.path.join(target, rel) if rel else str(target)
            _write_entry(dest, target, info, node, readers, as_root, report, dirs)
            report.files += 1
    finally:
        readers.close()
    for pending in reversed(dirs):  # deepest first, so a read-only parent is closed last
        os.chmod(pending.path, pending.mode)
        os.utime(pending.path, (pending.mtime, pending.mtime))
    return report


def _write_entry(dest: str, root: Path, info: tarfile.TarInfo, node: Node,
                 readers: LayerReaders, as_root: bool, report: UnpackReport,
                 dirs: list[_Pending]) -> None:
    mode = _allowed_mode(info, as_root, report)
    if info.isdir():
        if dest != str(root):
            os.mkdir(dest, 0o700)
        _set_owner_and_xattrs(dest, info, as_root, report)
        dirs.append(_Pending(dest, mode, info.mtime))
        return
    if info.islnk():
        os.link(os.path.join(root, info.linkname), dest, follow_symlinks=False)
        return
    if info.issym():
        os.symlink(info.linkname, dest)
    elif info.isreg():
        _write_file(dest, node, readers)
    elif info.isfifo():
        os.mkfifo(dest, 0o600)
    elif info.ischr() or info.isblk():
        if not as_root:
            report.note("device nodes skipped: only root can create them")
            return
        kind = stat.S_IFCHR if info.ischr() else stat.S_IFBLK
        os.mknod(dest, kind | 0o600, os.makedev(info.devmajor, info.devminor))
    _set_owner_and_xattrs(dest, info, as_root, report)
    if not info.issym():
        os.chmod(dest, mode)
    os.utime(dest, (info.mtime, info.mtime), follow_symlinks=False)


def _allowed_mode(info: tarfile.TarInfo, as_root: bool, report: UnpackReport) -> int:
    mode = info.mode & 0o7777
    if as_root:
        return mode
    if mode & (stat.S_ISUID | stat.S_ISGID) and not info.isdir():
        report.note("setuid/setgid bits dropped: unpacking as a normal user")
        mode &= ~(stat.S_ISUID | stat.S_ISGID)
    wanted = 0o700 if info.isdir() else 0o600
    if mode & wanted != wanted:
        report.note("owner permissions widened (u+rw, u+rwx on directories) so the tree "
                    "can be written and deleted by its owner")
        mode |= wanted
    return mode


def _write_file(dest: str, node: Node, readers: LayerReaders) -> None:
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | getattr(os, "O_CLOEXEC", 0)
    fd = os.open(dest, flags, 0o600)
    try:
        source = data_source(node)
        if source is not None and source[1].size:
            layer, info = source
            handle = readers.open_at(layer, info.offset_data)
            copy_range(handle.fileno(), fd, info.offset_data, 0, info.size)
    finally:
        os.close(fd)


def _set_owner_and_xattrs(dest: str, info: tarfile.TarInfo, as_root: bool,
                          report: UnpackReport) -> None:
    if as_root:
        os.chown(dest, info.uid, info.gid, follow_symlinks=False)
    elif info.uid != os.geteuid() or info.gid != os.getegid():
        report.note("ownership mapped to the calling user: unpacking as a normal user")
    for key, value in info.pax_headers.items():
        if not key.startswith(XATTR_PREFIX):
            continue
        name = key[len(XATTR_PREFIX):]
        raw = value.encode("utf-8", "surrogateescape")
        try:
            os.setxattr(dest, name, raw, follow_symlinks=False)
        except OSError:
            report.note(f"extended attribute {name} could not be set")


def remove_tree(path: Path) -> None:
    """Delete a tree even where modes forbid it (mode-000 or read-only directories)."""
    if not os.path.lexists(path):
        return
    if not path.is_dir() or path.is_symlink():
        path.unlink()
        return
    os.chmod(path, 0o700)
    for dirpath, dirnames, _ in os.walk(path, topdown=True):
        for name in dirnames:
            full = os.path.join(dirpath, name)
            if not os.path.islink(full):
                os.chmod(full, 0o700)
    for dirpath, dirnames, filenames in os.walk(path, topdown=False):
        for name in filenames:
            os.unlink(os.path.join(dirpath, name))
        for name in dirnames:
            full = os.path.join(dirpath, name)
            if os.path.islink(full):
                os.unlink(full)
            else:
                os.rmdir(full)
    os.rmdir(path)


def check_fresh_target(target: Path) -> None:
    if os.path.lexists(target):
        raise ImageError(f"{target} already exists", "choose a new path or remove it first")
