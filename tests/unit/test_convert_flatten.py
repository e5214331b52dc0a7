"""Layer flattening and unpacking: the field cases W1-W4, H1, S1, S2, P1 (as root), E1, E2."""

from __future__ import annotations

import gzip
import os
import tarfile
from pathlib import Path

import pytest
from oci_layouts import LayerBlob, LayoutWriter, TarEntry, tar_bytes

from hepbuild.errors import ImageError
from hepbuild.image import oci
from hepbuild.image.convert import flatten_image
from hepbuild.image.flatten import Flattener, write_tar
from hepbuild.image.unpack import remove_tree, unpack_tree

D, F, L, H = "dir", "file", "symlink", "hardlink"


def flatten(tmp_path: Path, *layers: list[TarEntry]) -> Flattener:
    flat = Flattener()
    for number, entries in enumerate(layers):
        path = tmp_path / f"layer{number}.tar"
        path.write_bytes(tar_bytes(entries))
        flat.add_layer(path, f"layer {number + 1}")
    return flat


def unpacked(tmp_path: Path, *layers: list[TarEntry]) -> Path:
    root = tmp_path / "root"
    unpack_tree(flatten(tmp_path, *layers), root)
    return root


def tree(root: Path) -> dict[str, str]:
    """path -> 'd', 'l:<target>' or 'f:<content>' for everything under root."""
    found: dict[str, str] = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            full = Path(dirpath, name)
            rel = str(full.relative_to(root))
            if full.is_symlink():
                found[rel] = "l:" + os.readlink(full)
            elif full.is_dir():
                found[rel] = "d"
            else:
                found[rel] = "f:" + full.read_bytes().decode("utf-8", "replace")
    return found


W1_LOWER = [TarEntry("d", D), TarEntry("d/old", data=b"old")]
W1_MEMBERS = [TarEntry("d", D), TarEntry("d/.a", data=b"new"), TarEntry("d/.wh..wh..opq"),
              TarEntry("d/sub", D), TarEntry("d/sub/f", data=b"f")]


@pytest.mark.parametrize("marker_at", range(1, 6))
def test_w1_opaque_marker_anywhere_hides_only_lower_layers(tmp_path: Path, marker_at: int) -> None:
    upper = [m for m in W1_MEMBERS if m.name != "d/.wh..wh..opq"]
    upper.insert(marker_at, TarEntry("d/.wh..wh..opq"))
    assert tree(unpacked(tmp_path, W1_LOWER, upper)) == {
        "d": "d", "d/.a": "f:new", "d/sub": "d", "d/sub/f": "f:f"}


def test_w2_opaque_directory_becomes_empty(tmp_path: Path) -> None:
    lower = [TarEntry("a", D), TarEntry("a/b", D), TarEntry("a/b/foo", data=b"x")]
    assert tree(unpacked(tmp_path, lower, [TarEntry("a", D), TarEntry("a/.wh..wh..opq")])) == {
        "a": "d"}


def test_w3_deleted_then_recreated(tmp_path: Path) -> None:
    result = tree(unpacked(tmp_path, [TarEntry("a/foo", data=b"1"), TarEntry("b/bar", data=b"2")],
                           [TarEntry(".wh.a")], [TarEntry("a/baz", data=b"3")]))
    assert result == {"a": "d", "b": "d", "a/baz": "f:3", "b/bar": "f:2"}


def test_w4_bare_whiteout_prefix_deletes_nothing(tmp_path: Path) -> None:
    lower = [TarEntry("etc", D), TarEntry("etc/passwd", data=b"p"), TarEntry("etc/hosts",
                                                                              data=b"h")]
    result = tree(unpacked(tmp_path, lower, [TarEntry("etc/.wh."), TarEntry(".wh.")]))
    assert result["etc/passwd"] == "f:p" and result["etc/hosts"] == "f:h"


def test_h1_hard_link_survives_deletion_of_its_partner(tmp_path: Path) -> None:
    flat = flatten(tmp_path, [TarEntry("A", data=b"x"), TarEntry("Z", H, link="A")],
                   [TarEntry(".wh.A")])
    stream = tmp_path / "flat.tar"
    with open(stream, "wb") as out:
        write_tar(flat, out)
    with tarfile.open(stream) as tf:
        members = {m.name: m for m in tf.getmembers()}
        assert "A" not in members
        assert members["Z"].isreg() and tf.extractfile("Z").read() == b"x"  # type: ignore


def test_hard_links_across_layers_share_one_inode(tmp_path: Path) -> None:
    root = unpacked(tmp_path, [TarEntry("A", data=b"x")], [TarEntry("B", H, link="A")])
    assert os.stat(root / "A").st_ino == os.stat(root / "B").st_ino


def test_hard_link_to_replaced_file_keeps_old_content(tmp_path: Path) -> None:
    root = unpacked(tmp_path, [TarEntry("A", data=b"old"), TarEntry("Z", H, link="A")],
                    [TarEntry("A", data=b"new")])
    assert (root / "Z").read_bytes() == b"old" and (root / "A").read_bytes() == b"new"


def test_flattened_tar_never_links_forward(tmp_path: Path) -> None:
    flat = flatten(tmp_path, [TarEntry("z", data=b"x"), TarEntry("a", H, link="z")])
    stream = tmp_path / "flat.tar"
    with open(stream, "wb") as out:
        write_tar(flat, out)
    with tarfile.open(stream) as tf:
        names = [m.name for m in tf.getmembers()]
        link = tf.getmember("z")
        assert names.index("a") < names.index("z") and link.islnk() and link.linkname == "a"


def test_s1_symlinks_are_resolved_inside_the_root(tmp_path: Path) -> None:
    layer = [TarEntry("pwn", L, link="/tmp/escape"),
             TarEntry("pwn2", L, link="../../../../tmp/escape2"),
             TarEntry("pwn/f.txt", data=b"f"), TarEntry("pwn2/g.txt", data=b"g")]
    root = unpacked(tmp_path, layer)
    assert (root / "tmp/escape/f.txt").read_bytes() == b"f"
    assert (root / "tmp/escape2/g.txt").read_bytes() == b"g"
    assert os.readlink(root / "pwn") == "/tmp/escape"
    assert not Path("/tmp/escape/f.txt").exists()


@pytest.mark.parametrize("name", ["../outside.txt", "a/../../outside.txt", "/etc/evil"])
def test_s1_member_leaving_the_root_is_refused_by_name(tmp_path: Path, name: str) -> None:
    with pytest.raises(ImageError, match="outside.txt|evil"):
        flatten(tmp_path, [TarEntry(name, data=b"x")])
    assert not (tmp_path.parent / "outside.txt").exists()


def test_hard_link_to_outside_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ImageError, match="hard link target of x"):
        flatten(tmp_path, [TarEntry("x", H, link="../../etc/passwd")])


def test_s2_link_text_is_kept(tmp_path: Path) -> None:
    layer = [TarEntry("usr/lib64/ld.so", data=b"elf"), TarEntry("lib64", L, link="/usr/lib64"),
             TarEntry("bin", L, link="usr/bin"),
             TarEntry("etc/alternatives/x", L, link="../../usr/bin/x")]
    result = tree(unpacked(tmp_path, layer))
    assert result["lib64"] == "l:/usr/lib64" and result["bin"] == "l:usr/bin"
    assert result["etc/alternatives/x"] == "l:../../usr/bin/x"


def test_dir_replaced_by_file_and_file_by_dir(tmp_path: Path) -> None:
    lower = [TarEntry("x", D), TarEntry("x/inner", data=b"i"), TarEntry("y", data=b"y")]
    upper = [TarEntry("x", data=b"now a file"), TarEntry("y", D), TarEntry("y/z", data=b"z")]
    assert tree(unpacked(tmp_path, lower, upper)) == {"x": "f:now a file", "y": "d",
                                                      "y/z": "f:z"}


def test_dir_replaced_by_symlink(tmp_path: Path) -> None:
    lower = [TarEntry("x", D), TarEntry("x/inner", data=b"i")]
    assert tree(unpacked(tmp_path, lower, [TarEntry("x", L, link="elsewhere")])) == {
        "x": "l:elsewhere"}


def test_long_and_non_utf8_names_and_xattrs(tmp_path: Path) -> None:
    long_name = "deep/" + "n" * 200 + "/file"
    odd = "caf\udce9.txt"  # byte 0xe9: Latin-1, not UTF-8
    layer = [TarEntry(long_name, data=b"long"), TarEntry(odd, data=b"odd",
                                                         xattrs=(("user.note", b"hi"),))]
    root = unpacked(tmp_path, layer)
    assert (root / long_name).read_bytes() == b"long"
    raw = os.path.join(os.fsencode(root), b"caf\xe9.txt")
    assert Path(os.fsdecode(raw)).read_bytes() == b"odd"
    try:
        assert os.getxattr(raw, "user.note") == b"hi"
    except OSError as exc:  # tmpfs without user xattrs: nothing to check there
        pytest.skip(f"the test filesystem does not keep user xattrs: {exc}")


def test_p1_modes_without_owner_access_can_be_unpacked_and_deleted(tmp_path: Path) -> None:
    lower = [TarEntry("dir", D, mode=0), TarEntry("file", data=b"x", mode=0),
             TarEntry("ro", D, mode=0o555), TarEntry("ro/a", data=b"a")]
    upper = [TarEntry("ro/b", data=b"b"), TarEntry("dir/inner", data=b"in")]
    root = unpacked(tmp_path, lower, upper)
    expected_dir = 0 if os.geteuid() == 0 else 0o700
    assert os.stat(root / "dir").st_mode & 0o7777 == expected_dir
    assert os.stat(root / "ro").st_mode & 0o7777 == (0o555 if os.geteuid() == 0 else 0o755)
    remove_tree(root)
    assert not root.exists()


def test_ownership_is_kept_as_root(tmp_path: Path) -> None:
    if os.geteuid() != 0:
        pytest.skip("only root can keep foreign ownership")
    root = unpacked(tmp_path, [TarEntry("f", data=b"x", uid=1234, gid=99, mode=0o4755)])
    st = os.stat(root / "f")
    assert (st.st_uid, st.st_gid, st.st_mode & 0o7777) == (1234, 99, 0o4755)


# --- layers in a layout: E1, E2 -------------------------------------------------------------

HELLO = tar_bytes([TarEntry("hello.txt", data=b"hello")])


def flatten_layout(tmp_path: Path, layers: list[LayerBlob]) -> dict[str, str]:
    writer = LayoutWriter(tmp_path / "img")
    writer.add_image("t", layers)
    image = oci.open_layout(tmp_path / "img", "t", "x86_64")
    work = tmp_path / "work"
    work.mkdir()
    root = tmp_path / "root"
    unpack_tree(flatten_image(image, work), root)
    return tree(root)


def test_e1_empty_layers(tmp_path: Path) -> None:
    zero_tar = bytes(1024)
    layers = [LayerBlob(b"", oci.OCI_LAYER_TAR),
              LayerBlob(zero_tar, oci.OCI_LAYER_GZIP, raw=gzip.compress(zero_tar, mtime=0)),
              LayerBlob(bytes(10240), oci.OCI_LAYER_TAR), LayerBlob(HELLO)]
    assert flatten_layout(tmp_path, layers) == {"hello.txt": "f:hello"}


@pytest.mark.parametrize("media_type", [
    oci.OCI_LAYER_TAR, oci.OCI_LAYER_GZIP, "application/vnd.oci.image.layer.v1.tar+zstd",
    "application/vnd.docker.image.rootfs.diff.tar.gzip"])
def test_e2_every_compression_unpacks_the_same(tmp_path: Path, media_type: str) -> None:
    assert flatten_layout(tmp_path, [LayerBlob(HELLO, media_type)]) == {"hello.txt": "f:hello"}


def test_e2_gzip_bytes_typed_as_plain_tar_are_detected(tmp_path: Path) -> None:
    layer = LayerBlob(HELLO, oci.OCI_LAYER_TAR, raw=gzip.compress(HELLO, mtime=0))
    assert flatten_layout(tmp_path, [layer]) == {"hello.txt": "f:hello"}


def test_e2_unknown_media_type_is_a_clear_error(tmp_path: Path) -> None:
    layer = LayerBlob(HELLO, "application/x-weird")
    with pytest.raises(ImageError, match="unknown media type 'application/x-weird'"):
        flatten_layout(tmp_path, [layer])


def test_e2_corrupted_blob_is_named_by_digest(tmp_path: Path) -> None:
    writer = LayoutWriter(tmp_path / "img")
    writer.add_image("t", [LayerBlob(HELLO)])
    image = oci.open_layout(tmp_path / "img", "t", "x86_64")
    blob = image.blob_path(image.layers[0].digest)
    blob.write_bytes(gzip.compress(HELLO + bytes(512), mtime=0))
    with pytest.raises(ImageError, match=image.layers[0].digest):
        flatten_image(image, tmp_path)


def test_e2_wrong_diff_id_is_refused(tmp_path: Path) -> None:
    writer = LayoutWriter(tmp_path / "img")
    writer.add_image("t", [LayerBlob(HELLO)], config={"rootfs": {}})
    image = oci.open_layout(tmp_path / "img", "t", "x86_64")
    bad = oci.LayerRef(image.layers[0].digest, oci.OCI_LAYER_GZIP, 0, "sha256:" + "0" * 64)
    with pytest.raises(ImageError, match="diff_id"):
        oci.open_plain_layer(image, bad, tmp_path)
