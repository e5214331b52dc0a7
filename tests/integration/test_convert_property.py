"""Property test: our flattening agrees with umoci on random small layer stacks.

Each example is a stack of 1-3 layers drawn from a tiny name pool (so paths collide often)
with directories, files, symlinks, hard links, whiteouts and opaque markers at random tar
positions, random modes (including 000 and setuid) and owners. ``umoci raw unpack`` (as root,
keeping ownership) is the oracle; our sandbox unpack and our tar stream, squashed by tar2sqfs
and listed back with sqfs2tar, must both match it.
"""

from __future__ import annotations

import hashlib
import os
import stat
import subprocess
import tarfile
import tempfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from oci_layouts import LayerBlob, LayoutWriter, TarEntry, tar_bytes

from hepbuild.image import oci
from hepbuild.image.convert import flatten_image
from hepbuild.image.flatten import write_tar
from hepbuild.image.unpack import remove_tree, unpack_tree

pytestmark = [pytest.mark.tools, pytest.mark.root]

# 500 examples take about 15 s on 2 cores; the variable allows a longer hunt by hand.
EXAMPLES = int(os.environ.get("HEPBUILD_PROPERTY_EXAMPLES", "500"))
NAMES = ["a", "b", "c"]
FILE_MODES = [0o644, 0o600, 0o755, 0o000, 0o4755, 0o2711]
DIR_MODES = [0o755, 0o700, 0o555, 0o000, 0o1777]
OWNERS = [0, 1000, 65534]
LINK_TEXTS = ["a", "../b", "/c", "a/b", "missing"]

path_strategy = st.lists(st.sampled_from(NAMES), min_size=1, max_size=3).map("/".join)


class LayerBuilder:
    """One layer's members: ancestors always first, no duplicates, whiteouts kept apart."""

    def __init__(self, draw: st.DrawFn) -> None:
        self.draw = draw
        self.members: list[TarEntry] = []
        self.kinds: dict[str, str] = {}
        self.whited: set[str] = set()

    def _blocked(self, path: str) -> bool:
        parts = path.split("/")
        ancestors = ["/".join(parts[:i]) for i in range(1, len(parts))]
        if path in self.kinds or any(self.kinds.get(a, "dir") != "dir" for a in ancestors):
            return True
        return any(path == w or path.startswith(w + "/") or w.startswith(path + "/")
                   for w in self.whited)

    def _ensure_dirs(self, path: str) -> None:
        parts = path.split("/")
        for i in range(1, len(parts) + 1):
            prefix = "/".join(parts[:i])
            if prefix not in self.kinds:
                self._add(TarEntry(prefix, "dir", mode=self.draw(st.sampled_from(DIR_MODES)),
                                   uid=self.draw(st.sampled_from(OWNERS)),
                                   gid=self.draw(st.sampled_from(OWNERS))))

    def _add(self, entry: TarEntry) -> None:
        self.members.append(entry)
        self.kinds[entry.name] = entry.kind

    def _parent(self, path: str) -> None:
        if "/" in path:
            self._ensure_dirs(path.rsplit("/", 1)[0])

    def add_random(self) -> None:
        kind = self.draw(st.sampled_from(["dir", "file", "file", "symlink", "hardlink",
                                          "whiteout", "opaque"]))
        path = self.draw(path_strategy)
        if kind == "opaque":
            self._opaque(path)
            return
        if self._blocked(path):
            return
        self._parent(path)
        if kind == "whiteout":
            self.whited.add(path)
            head, _, base = path.rpartition("/")
            self.members.append(TarEntry(f"{head}/.wh.{base}" if head else f".wh.{base}"))
        elif kind == "hardlink":
            targets = [name for name, k in self.kinds.items() if k == "file"]
            if targets:
                self._add(TarEntry(path, "hardlink", link=self.draw(st.sampled_from(targets))))
        elif kind == "symlink":
            self._add(TarEntry(path, "symlink", link=self.draw(st.sampled_from(LINK_TEXTS))))
        elif kind == "dir":
            self._ensure_dirs(path)
        else:
            self._add(TarEntry(path, "file", data=self.draw(st.binary(max_size=40)),
                               mode=self.draw(st.sampled_from(FILE_MODES)),
                               uid=self.draw(st.sampled_from(OWNERS)),
                               gid=self.draw(st.sampled_from(OWNERS))))

    def _opaque(self, path: str) -> None:
        if path in self.kinds and self.kinds[path] != "dir" or self._blocked(path + "/x"):
            return
        self._ensure_dirs(path)
        after = [m.name for m in self.members].index(path) + 1
        position = self.draw(st.integers(after, len(self.members)))
        self.members.insert(position, TarEntry(f"{path}/.wh..wh..opq"))


@st.composite
def layer_stacks(draw: st.DrawFn) -> list[list[TarEntry]]:
    stack = []
    for _ in range(draw(st.integers(1, 3))):
        builder = LayerBuilder(draw)
        for _ in range(draw(st.integers(1, 7))):
            builder.add_random()
        stack.append(builder.members)
    return stack


def disk_tree(root: Path) -> dict[str, tuple]:
    found: dict[str, tuple] = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            full = os.path.join(dirpath, name)
            st_ = os.lstat(full)
            found[os.path.relpath(full, root)] = _describe(
                st_.st_mode, st_.st_uid, st_.st_gid,
                os.readlink(full) if stat.S_ISLNK(st_.st_mode) else None,
                _file_hash(full) if stat.S_ISREG(st_.st_mode) else None)
    return found


def _describe(mode: int, uid: int, gid: int, link: str | None, digest: str | None) -> tuple:
    kind = "l" if stat.S_ISLNK(mode) else "d" if stat.S_ISDIR(mode) else "f"
    perms = None if kind == "l" else stat.S_IMODE(mode)
    return (kind, perms, uid, gid, link, digest)


def _file_hash(path: str) -> str:
    with open(path, "rb") as fh:
        return hashlib.sha256(fh.read()).hexdigest()


def squashfs_tree(squash: Path, work: Path) -> dict[str, tuple]:
    """What the squashfs holds, read back as a tar by sqfs2tar (hard links resolved)."""
    tar_path = work / "back.tar"
    with open(tar_path, "wb") as out:
        subprocess.run(["sqfs2tar", "--no-xattr", str(squash)], stdout=out, check=True)
    found: dict[str, tuple] = {}
    contents: dict[str, str] = {}
    with tarfile.open(tar_path) as tf:
        for m in tf.getmembers():
            name = m.name.rstrip("/")
            if m.isreg():
                contents[name] = hashlib.sha256(tf.extractfile(m).read()).hexdigest()  # type: ignore[union-attr]
            digest = contents.get(m.linkname) if m.islnk() else contents.get(name)
            mode = (stat.S_IFDIR if m.isdir() else stat.S_IFLNK if m.issym() else
                    stat.S_IFREG) | m.mode
            found[name] = _describe(mode, m.uid, m.gid, m.linkname if m.issym() else None,
                                    digest)
    return found


def check_stack(stack: list[list[TarEntry]]) -> None:
    with tempfile.TemporaryDirectory(prefix="hepbuild-prop-") as scratch:
        work = Path(scratch)
        writer = LayoutWriter(work / "img")
        writer.add_image("t", [LayerBlob(tar_bytes(m), oci.OCI_LAYER_TAR) for m in stack])
        subprocess.run(["umoci", "raw", "unpack", "--image", f"{work / 'img'}:t",
                        str(work / "umoci")], check=True, capture_output=True)
        expected = disk_tree(work / "umoci")
        image = oci.open_layout(work / "img", "t", "x86_64")
        flat = flatten_image(image, work)
        unpack_tree(flat, work / "ours")
        assert disk_tree(work / "ours") == expected
        stream = work / "flat.tar"
        with open(stream, "wb") as out:
            write_tar(flat, out)
        with open(stream, "rb") as tar_in:
            subprocess.run(["tar2sqfs", "--quiet", "--force", "--compressor", "gzip",
                            str(work / "root.sqfs")], stdin=tar_in, check=True)
        assert squashfs_tree(work / "root.sqfs", work) == expected
        for name in ("umoci", "ours"):
            remove_tree(work / name)


@settings(max_examples=EXAMPLES, derandomize=True, deadline=None, database=None,
          suppress_health_check=[HealthCheck.too_slow])
@given(layer_stacks())
def test_flatten_agrees_with_umoci(stack: list[list[TarEntry]]) -> None:
    check_stack(stack)
