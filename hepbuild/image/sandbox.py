"""A sandbox directory turned back into one tar layer (sandbox -> OCI)."""

from __future__ import annotations

import os
import tarfile
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

XATTR_PREFIX = "SCHILY.xattr."


def tar_directory(root: Path, out: BinaryIO) -> int:
    """Write ``root``'s tree as a PAX tar, sorted, hard links kept; returns the member count.

    Run as a normal user, files the caller owns are recorded as root's (the sandbox was
    unpacked with ownership mapped to the caller, so this maps it back).
    """
    as_root = os.geteuid() == 0
    count = 0
    with tarfile.open(fileobj=out, mode="w|", format=tarfile.PAX_FORMAT, encoding="utf-8",
                      errors="surrogateescape", bufsize=1 << 20) as tf:
        for rel, full in _walk_sorted(root):
            info = _tarinfo(tf, full, rel, as_root)
            if info is None:
                continue  # sockets cannot be stored in a tar; nothing to keep
            if info.isreg():
                with open(full, "rb") as fh:
                    tf.addfile(info, fh)
            else:
                tf.addfile(info)  # tarfile itself turns a second path of an inode into a link
            count += 1
    return count


def _walk_sorted(root: Path) -> Iterator[tuple[str, str]]:
    stack = [("", str(root))]
    while stack:
        rel, full = stack.pop()
        if rel:
            yield rel, full
        if os.path.isdir(full) and not os.path.islink(full):
            names = sorted(os.listdir(full), key=os.fsencode, reverse=True)
            for name in names:
                stack.append((f"{rel}/{name}" if rel else name, os.path.join(full, name)))


def _tarinfo(tf: tarfile.TarFile, full: str, rel: str, as_root: bool
             ) -> tarfile.TarInfo | None:
    info = tf.gettarinfo(full, arcname=rel)
    if info is None:
        return None
    if not as_root and info.uid == os.geteuid():
        info.uid, info.gid, info.uname, info.gname = 0, 0, "root", "root"
    try:
        for name in os.listxattr(full, follow_symlinks=False):
            value = os.getxattr(full, name, follow_symlinks=False)
            headers = dict(info.pax_headers)
            headers[XATTR_PREFIX + name] = value.decode("utf-8", "surrogateescape")
            info.pax_headers = headers
    except OSError:
        pass  # a filesystem without xattr support has none to keep
    return info
