"""Conversions with the real tools: siftool both ways, tar2sqfs streaming, unsquashfs, skopeo."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from oci_layouts import LayerBlob, LayoutWriter, TarEntry, tar_bytes

from hepbuild.image import oci, sif
from hepbuild.image.convert import convert
from hepbuild.image.unpack import remove_tree

pytestmark = pytest.mark.tools
D, F, L, H = "dir", "file", "symlink", "hardlink"
CONFIG = {"config": {"Env": ["PATH=/usr/bin:/bin", "GREETING=hi there"],
                     "Entrypoint": ["/bin/sh", "-c"], "Cmd": ["echo C"],
                     "WorkingDir": "/work", "Labels": {"org.example.team": "hep"}}}
LAYERS = [
    [TarEntry("a", D), TarEntry("a/b", D), TarEntry("a/b/foo", data=b"foo"),
     TarEntry("A", data=b"x"), TarEntry("Z", H, link="A"), TarEntry("usr/lib64/ld.so",
                                                                    data=b"elf"),
     TarEntry("lib64", L, link="/usr/lib64"), TarEntry("bin", L, link="usr/bin"),
     TarEntry("etc/alternatives/x", L, link="../../usr/bin/x"),
     TarEntry("suid", data=b"s", mode=0o4755, uid=0), TarEntry("owned", data=b"o", uid=1234,
                                                               gid=99)],
    [TarEntry("a", D), TarEntry("a/.wh..wh..opq"), TarEntry(".wh.A"),
     TarEntry("d/.wh..wh..opq"), TarEntry("d/new", data=b"new")],
]


def run(*argv: str | Path) -> str:
    return subprocess.run([str(a) for a in argv], check=True, capture_output=True,
                          text=True).stdout


def make_layout(tmp_path: Path, layers: list[list[TarEntry]] = LAYERS) -> str:
    writer = LayoutWriter(tmp_path / "img")
    writer.add_image("t", [LayerBlob(tar_bytes(entries)) for entries in layers], CONFIG)
    return f"oci:{tmp_path / 'img'}:t"


def fields(text: str) -> list[tuple[str, str]]:
    rows = []
    for line in text.splitlines():
        key, _, value = line.strip().partition(":")
        rows.append((key.strip(), value.strip()))
    return rows


LISTING_LINE = re.compile(r"^([-dlcbps][-rwxsStT]{9}) (\S+) .*? \d{4}-\d\d-\d\d \d\d:\d\d (.*)$")


def squash_listing(sif_path: Path) -> dict[str, str]:
    """path -> 'mode owner' from unsquashfs -lls at the primary partition's offset."""
    part = sif.read_sif(sif_path).primary_partition()
    assert part is not None
    listing = run("unsquashfs", "-lls", "-o", str(part.offset), "-d", "", sif_path)
    found = {}
    for line in listing.splitlines():
        match = LISTING_LINE.match(line)
        if match:  # devices show "major, minor" where files show a size, hence the regex
            name = match.group(3).split(" -> ")[0]
            found[name.lstrip("/")] = f"{match.group(1)} {match.group(2)}"
    return found


def test_our_sif_is_read_by_siftool_field_by_field(tmp_path: Path) -> None:
    result = convert(make_layout(tmp_path), f"sif:{tmp_path / 'x.sif'}")
    path = tmp_path / "x.sif"
    image = sif.read_sif(path)
    assert run("siftool", "list", path) == sif.render_list(image)
    assert fields(run("siftool", "header", path)) == sif.header_fields(image)
    for desc in image.descriptors:
        assert fields(run("siftool", "info", str(desc.id), path)) == desc.info_fields()
        dumped = subprocess.run(["siftool", "dump", str(desc.id), path], check=True,
                                capture_output=True).stdout
        assert dumped == image.read_object(desc)
    names = [d.name for d in image.descriptors]
    assert names == ["", "inspect-metadata.json", "oci-config.json", ""]
    assert image.header.launch_script == sif.APPTAINER_LAUNCH
    assert result.checksum_files == [f"{path}.sha256", f"{path}.md5"]
    subprocess.run(["sha256sum", "-c", f"{path.name}.sha256"], cwd=tmp_path, check=True)
    subprocess.run(["md5sum", "-c", f"{path.name}.md5"], cwd=tmp_path, check=True)


def test_siftool_written_sif_is_read_by_us(tmp_path: Path) -> None:
    path = tmp_path / "t.sif"
    (tmp_path / "def").write_text("bootstrap: docker\nfrom: alpine:3.19\n")
    (tmp_path / "labels.json").write_text('{"a":"b"}')
    (tmp_path / "root.sqfs").write_bytes(b"hsqs" + bytes(4092))
    run("siftool", "new", path)
    run("siftool", "add", "--datatype", "1", "--groupid", "1", path, tmp_path / "def")
    run("siftool", "add", "--datatype", "3", "--groupid", "1", path, tmp_path / "labels.json")
    run("siftool", "add", "--datatype", "4", "--parttype", "2", "--partfs", "1",
        "--partarch", "4", "--groupid", "1", path, tmp_path / "root.sqfs")
    run("siftool", "add", "--datatype", "7", "--link", "3", "--filename", "myblob", path,
        tmp_path / "labels.json")
    run("siftool", "add", "--datatype", "9", "--sbomformat", "spdx-json", "--groupid", "2",
        path, tmp_path / "labels.json")
    run("siftool", "add", "--datatype", "5", "--signhash", "1", "--signentity",
        "433FE984155206BD962725E20E8713472A879943", "--groupid", "0", "--link", "1", path,
        tmp_path / "labels.json")
    image = sif.read_sif(path)
    assert sif.render_list(image) == run("siftool", "list", path)
    assert sif.header_fields(image) == fields(run("siftool", "header", path))
    for desc in image.descriptors:
        assert desc.info_fields() == fields(run("siftool", "info", str(desc.id), path))
    assert image.header.arch == "arm64" and image.primary_partition().offset % 4096 == 0


def test_w2_whiteouts_hold_on_the_streaming_path(tmp_path: Path) -> None:
    convert(make_layout(tmp_path), f"sif:{tmp_path / 'x.sif'}")
    listing = squash_listing(tmp_path / "x.sif")
    assert "a" in listing and not [p for p in listing if p.startswith("a/")]
    assert not [p for p in listing if ".wh." in p]
    assert "A" not in listing and listing["Z"].startswith("-rw-r--r-- ")
    assert listing["suid"] == "-rwsr-xr-x root/root"
    assert listing["owned"].split()[1] == "1234/99"
    assert listing["d/new"].startswith("-")


def test_sif_round_trip_keeps_config_and_tree(tmp_path: Path) -> None:
    convert(make_layout(tmp_path), f"sif:{tmp_path / 'x.sif'}")
    convert(f"sif:{tmp_path / 'x.sif'}", f"oci:{tmp_path / 'back'}")
    back = oci.open_layout(tmp_path / "back", None, "x86_64")
    for key in ("Env", "Entrypoint", "Cmd", "WorkingDir", "Labels"):
        assert back.config["config"][key] == CONFIG["config"][key]
    convert(f"oci:{tmp_path / 'back'}", f"sandbox:{tmp_path / 'sb'}")
    root = tmp_path / "sb"
    assert os.readlink(root / "lib64") == "/usr/lib64"
    assert os.readlink(root / "etc/alternatives/x") == "../../usr/bin/x"
    assert (root / "Z").read_bytes() == b"x" and not (root / "A").exists()
    assert os.listdir(root / "a") == []
    assert os.stat(root / "owned").st_uid == 1234
    assert (root / ".singularity.d/runscript").stat().st_mode & 0o777 == 0o755


def test_sandbox_to_sif_and_back(tmp_path: Path) -> None:
    convert(make_layout(tmp_path), f"sandbox:{tmp_path / 'sb'}")
    convert(f"sandbox:{tmp_path / 'sb'}", f"sif:{tmp_path / 's.sif'}")
    convert(f"sif:{tmp_path / 's.sif'}", f"sandbox:{tmp_path / 'sb2'}")
    first = run("find", tmp_path / "sb", "-printf", "%P %y %m %U %l\n").splitlines()
    second = run("find", tmp_path / "sb2", "-printf", "%P %y %m %U %l\n").splitlines()
    assert sorted(first) == sorted(second)
    assert sif.read_sif(tmp_path / "s.sif").header.arch == "amd64"


def test_oci_archive_both_ways_through_skopeo(tmp_path: Path) -> None:
    result = convert(make_layout(tmp_path), f"oci-archive:{tmp_path / 'img.tar'}")
    assert result.format == "oci" and result.arch == "x86_64"
    assert result.platform == "linux/amd64"
    assert result.size == (tmp_path / "img.tar").stat().st_size
    subprocess.run(["sha256sum", "-c", "img.tar.sha256"], cwd=tmp_path, check=True)
    inspect = json.loads(run("skopeo", "inspect", f"oci-archive:{tmp_path / 'img.tar'}"))
    assert inspect["Env"] == CONFIG["config"]["Env"]
    convert(f"oci-archive:{tmp_path / 'img.tar'}", f"sandbox:{tmp_path / 'sb'}")
    assert (tmp_path / "sb/d/new").read_bytes() == b"new"


@pytest.fixture
def shared_dir_for_nobody() -> Iterator[Path]:
    """pytest's tmp dirs are private to root; the normal user needs a path it can reach."""
    base = Path(tempfile.mkdtemp(prefix="hepbuild-p1-", dir="/var/tmp"))
    os.chmod(base, 0o755)
    yield base
    remove_tree(base)


@pytest.mark.root
def test_p1_unpack_as_a_normal_user(shared_dir_for_nobody: Path) -> None:
    tmp_path = shared_dir_for_nobody
    layers = [[TarEntry("dir", D, mode=0), TarEntry("file", data=b"x", mode=0),
               TarEntry("ro", D, mode=0o555), TarEntry("ro/a", data=b"a")],
              [TarEntry("ro/b", data=b"b"), TarEntry("dir/inner", data=b"in"),
               TarEntry("null", "char", device=(1, 3)), TarEntry("su", data=b"s", mode=0o4755),
               TarEntry("owned", data=b"o", uid=1234, gid=99)]]
    source = make_layout(tmp_path, layers)
    work = tmp_path / "nobody"
    work.mkdir()
    shutil.chown(work, 65534, 65534)
    script = ("import sys, pathlib\nfrom hepbuild.image.convert import convert\n"
              "from hepbuild.image.unpack import remove_tree\n"
              f"convert({source!r}, 'sandbox:{work}/sb')\n"
              f"root = pathlib.Path('{work}/sb')\n"
              "got = {p: (root / p).read_bytes() for p in ('file', 'ro/a', 'ro/b', 'dir/inner')}\n"
              "assert got == {'file': b'x', 'ro/a': b'a', 'ro/b': b'b', 'dir/inner': b'in'}, got\n"
              "assert (root / 'dir').is_dir()\nremove_tree(root)\nassert not root.exists()\n"
              f"convert({source!r}, 'sif:{work}/x.sif')\n")
    proc = subprocess.run(["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups",
                           sys.executable, "-c", script], capture_output=True, text=True,
                          cwd=work, env={**os.environ, "HOME": str(work)})
    assert proc.returncode == 0, proc.stderr
    listing = squash_listing(work / "x.sif")  # the SIF path keeps ownership without root
    assert listing["owned"].split()[1] == "1234/99" and listing["su"].startswith("-rws")
    assert listing["dir"].startswith("d--------- ") and listing["null"].startswith("c")
    for change in ("owner permissions widened", "device nodes skipped",
                   "setuid/setgid bits dropped", "ownership mapped to the calling user"):
        assert change in proc.stderr


def test_sif_to_sandbox_refuses_a_foreign_partition(tmp_path: Path) -> None:
    path = tmp_path / "t.sif"
    (tmp_path / "raw").write_bytes(b"not squashfs" * 400)
    run("siftool", "new", path)
    run("siftool", "add", "--datatype", "4", "--parttype", "2", "--partfs", "1",
        "--partarch", "2", "--groupid", "1", path, tmp_path / "raw")
    from hepbuild.errors import ImageError

    with pytest.raises(ImageError, match="is not squashfs"):
        convert(f"sif:{path}", f"sandbox:{tmp_path / 'sb'}")
    assert not (tmp_path / "sb").exists()


def test_mksquashfs_fallback_gives_the_same_tree(tmp_path: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    source = make_layout(tmp_path)
    convert(source, f"sif:{tmp_path / 'stream.sif'}")
    from hepbuild.image import convert as convert_module

    monkeypatch.setattr(convert_module.tools, "have_tool", lambda name: name != "tar2sqfs")
    convert(source, f"sif:{tmp_path / 'fallback.sif'}")
    streamed = squash_listing(tmp_path / "stream.sif")
    fallback = squash_listing(tmp_path / "fallback.sif")
    assert {k: v.split()[0] for k, v in streamed.items()} == {
        k: v.split()[0] for k, v in fallback.items()}
    assert fallback["owned"].split()[1] == "1234/99"


def test_containers_storage_both_ways(tmp_path: Path) -> None:
    store = f"containers-storage:[vfs@{tmp_path / 'graph'}+{tmp_path / 'run'}]localhost/hep/x:1"
    convert(make_layout(tmp_path), store)
    convert(store, f"sif:{tmp_path / 'x.sif'}")
    assert squash_listing(tmp_path / "x.sif")["d/new"].startswith("-")


def test_docker_archive_both_ways(tmp_path: Path) -> None:
    result = convert(make_layout(tmp_path), f"docker-archive:{tmp_path / 'img.tar'}")
    assert result.format == "docker-archive"  # Docker's own format, not an OCI layout
    assert result.checksum_files == [f"{tmp_path / 'img.tar'}.sha256",
                                     f"{tmp_path / 'img.tar'}.md5"]
    convert(f"docker-archive:{tmp_path / 'img.tar'}", f"sandbox:{tmp_path / 'sb'}")
    assert (tmp_path / "sb/Z").read_bytes() == b"x"


def test_odd_names_and_xattrs_survive_the_streaming_path(tmp_path: Path) -> None:
    layers = [[TarEntry("caf\udce9", data=b"odd"), TarEntry("deep/" + "n" * 150 + "/f", data=b"l"),
               TarEntry("cap", data=b"c", xattrs=(("user.note", b"hi"),))]]
    convert(make_layout(tmp_path, layers), f"sif:{tmp_path / 'x.sif'}")
    convert(f"sif:{tmp_path / 'x.sif'}", f"sandbox:{tmp_path / 'sb'}")
    root = os.fsencode(tmp_path / "sb")
    assert Path(os.fsdecode(os.path.join(root, b"caf\xe9"))).read_bytes() == b"odd"
    assert (tmp_path / "sb" / ("deep/" + "n" * 150 + "/f")).read_bytes() == b"l"
    assert os.getxattr(tmp_path / "sb" / "cap", "user.note") == b"hi"


@pytest.mark.root
def test_device_nodes_are_made_as_root(tmp_path: Path) -> None:
    layers = [[TarEntry("dev", "dir"), TarEntry("dev/null", "char", device=(1, 3), mode=0o666)]]
    convert(make_layout(tmp_path, layers), f"sandbox:{tmp_path / 'sb'}")
    st = os.lstat(tmp_path / "sb/dev/null")
    assert os.major(st.st_rdev) == 1 and os.minor(st.st_rdev) == 3
    assert st.st_mode & 0o777 == 0o666


def test_sandbox_to_oci_with_a_default_config(tmp_path: Path) -> None:
    root = tmp_path / "root"
    (root / "usr/bin").mkdir(parents=True)
    (root / "usr/bin/tool").write_text("#!/bin/sh\n")
    os.link(root / "usr/bin/tool", root / "usr/bin/tool2")
    (root / "lib").symlink_to("usr/lib")
    convert(f"sandbox:{root}", f"oci:{tmp_path / 'out'}:v1")
    image = oci.open_layout(tmp_path / "out", "v1", "x86_64")
    assert image.config["architecture"] == "amd64"
    assert image.config["config"]["Env"][0].startswith("PATH=")
    assert len(image.layers) == 1 and image.layers[0].media_type == oci.OCI_LAYER_GZIP
    convert(f"oci:{tmp_path / 'out'}:v1", f"sandbox:{tmp_path / 'again'}")
    again = tmp_path / "again"
    assert os.readlink(again / "lib") == "usr/lib"
    assert os.stat(again / "usr/bin/tool").st_ino == os.stat(again / "usr/bin/tool2").st_ino
