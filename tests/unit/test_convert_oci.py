"""OCI layouts: platform picking in an index (G3), tags, and image reference parsing."""

from __future__ import annotations

import importlib.util
import json
import os
from pathlib import Path

import pytest
from oci_layouts import LayerBlob, LayoutWriter, TarEntry, tar_bytes

from hepbuild.errors import ImageError, UsageError
from hepbuild.image import oci
from hepbuild.image.transports import ImageRef, parse_ref, repository_of

G3_PLATFORMS = [("amd64", None), ("386", None), ("arm", "v5"), ("arm", "v6"), ("arm", "v7"),
                ("arm64", "v8")]


def index_layout(tmp_path: Path, platforms: list[tuple[str, str | None]]) -> Path:
    writer = LayoutWriter(tmp_path / "img")
    for arch, variant in platforms:
        layer = LayerBlob(tar_bytes([TarEntry("arch", data=f"{arch}{variant}".encode())]))
        platform = {"os": "linux", "architecture": arch, **({"variant": variant} if variant
                                                           else {})}
        config = {"architecture": arch, **({"variant": variant} if variant else {})}
        writer.add_image(f"{arch}-{variant}", [layer], config, platform)
    return tmp_path / "img"


def chosen(layout: Path, want: str) -> str:
    image = oci.open_layout(layout, None, want)
    assert image.platform is not None
    return f"{image.platform.architecture}/{image.platform.variant}"


@pytest.mark.parametrize("order", ["forward", "reverse"])
@pytest.mark.parametrize(("want", "expected"), [
    ("linux/arm/v6", "arm/v6"), ("linux/arm/v7", "arm/v7"), ("arm64", "arm64/v8"),
    ("linux/386", "386/None"), ("x86_64", "amd64/None")])
def test_g3_platform_picking(tmp_path: Path, order: str, want: str, expected: str) -> None:
    platforms = G3_PLATFORMS if order == "forward" else G3_PLATFORMS[::-1]
    assert chosen(index_layout(tmp_path, platforms), want) == expected


def test_g3_386_never_matches_amd64(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="no entry for platform linux/386"):
        chosen(index_layout(tmp_path, [("amd64", None)]), "linux/386")


def test_g3_arm_v5_is_not_v6_or_v7(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="linux/arm/v6, linux/arm/v7"):
        chosen(index_layout(tmp_path, [("arm", "v6"), ("arm", "v7")]), "linux/arm/v5")


def test_unknown_tag_lists_the_tags_there(tmp_path: Path) -> None:
    layout = index_layout(tmp_path, [("amd64", None)])
    with pytest.raises(ImageError, match="no image tagged 'nope'.*amd64-None"):
        oci.open_layout(layout, "nope", None)


def test_not_a_layout(tmp_path: Path) -> None:
    with pytest.raises(ImageError, match="not an OCI layout"):
        oci.open_layout(tmp_path, None, None)


@pytest.mark.parametrize(("text", "expected"), [
    ("docker://127.0.0.1:5000/hep/app:1.0", ImageRef("docker", "127.0.0.1:5000/hep/app:1.0")),
    ("oci:/tmp/img:latest", ImageRef("oci", "/tmp/img", "latest")),
    ("oci:/tmp/img", ImageRef("oci", "/tmp/img")),
    ("oci:rel/dir:v1", ImageRef("oci", "rel/dir", "v1")),
    ("oci-archive:/tmp/x.tar", ImageRef("oci-archive", "/tmp/x.tar")),
    ("docker-archive:x.tar", ImageRef("docker-archive", "x.tar")),
    ("containers-storage:localhost/app:1", ImageRef("containers-storage", "localhost/app:1")),
    ("sif:out/app.sif", ImageRef("sif", "out/app.sif")),
    ("sandbox:/tmp/root", ImageRef("sandbox", "/tmp/root")),
])
def test_parse_ref(text: str, expected: ImageRef) -> None:
    assert parse_ref(text) == expected


@pytest.mark.parametrize("text", ["app.sif", "ftp:x", "docker://", "sif:"])
def test_bad_refs_say_how_to_write_them(text: str) -> None:
    with pytest.raises(UsageError):
        parse_ref(text)


@pytest.mark.parametrize(("ref", "repo"), [
    ("127.0.0.1:5000/hep/app:1.0", "127.0.0.1:5000/hep/app"),
    ("127.0.0.1:5000/hep/app", "127.0.0.1:5000/hep/app"),
    ("hep/app@sha256:" + "a" * 64, "hep/app")])
def test_repository_of(ref: str, repo: str) -> None:
    assert repository_of(ref) == repo


def test_docker_v2_manifest_and_layer_types(tmp_path: Path) -> None:
    writer = LayoutWriter(tmp_path / "img")
    layer = LayerBlob(tar_bytes([TarEntry("f", data=b"docker")]),
                      "application/vnd.docker.image.rootfs.diff.tar.gzip")
    digest = writer.add_image("t", [layer])
    manifest_path = oci.blob_path(tmp_path / "img", digest)
    manifest = json.loads(manifest_path.read_text())
    manifest["mediaType"] = oci.DOCKER_MANIFEST
    manifest["config"]["mediaType"] = "application/vnd.docker.container.image.v1+json"
    new_digest, size = oci.write_blob(tmp_path / "img", json.dumps(manifest).encode())
    index = json.loads((tmp_path / "img" / "index.json").read_text())
    index["manifests"][0].update(mediaType=oci.DOCKER_MANIFEST, digest=new_digest, size=size)
    (tmp_path / "img" / "index.json").write_text(json.dumps(index))
    image = oci.open_layout(tmp_path / "img", "t", None)
    assert image.manifest_digest == new_digest
    assert oci.layer_compression(image.layers[0]) == "gzip"


def test_index_json_is_replaced_not_rewritten_in_place(tmp_path: Path) -> None:
    # A reader holding the old index (here: a hard link to it) must never see a half-written
    # or changed file; only a rename into place gives that.
    writer = LayoutWriter(tmp_path)
    writer.add_image("one", [LayerBlob(tar_bytes([TarEntry("a", data=b"1")]))])
    reader_view = tmp_path / "old-index.json"
    os.link(tmp_path / "index.json", reader_view)
    before = reader_view.read_bytes()
    writer.add_image("two", [LayerBlob(tar_bytes([TarEntry("b", data=b"2")]))])
    assert reader_view.read_bytes() == before
    tags = [m["annotations"][oci.REF_NAME]
            for m in json.loads((tmp_path / "index.json").read_text())["manifests"]]
    assert tags == ["one", "two"]
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]


def test_the_test_layout_writer_is_not_shipped() -> None:
    assert importlib.util.find_spec("hepbuild.image.layout") is None
