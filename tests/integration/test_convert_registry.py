"""docker:// sources and destinations against Debian's docker-registry on 127.0.0.1."""

from __future__ import annotations

import base64
import json
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from oci_layouts import LayerBlob, LayoutWriter, TarEntry, tar_bytes

from hepbuild.errors import ToolError
from hepbuild.image import oci
from hepbuild.image.convert import convert

pytestmark = [pytest.mark.tools, pytest.mark.registry]
USER, SECRET = "robot$hep+ci", "s3cr3t$1"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def registry(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    """A throwaway registry with htpasswd auth; yields its host:port and an auth file."""
    port = free_port()
    htpasswd = tmp_path / "htpasswd"
    subprocess.run(["htpasswd", "-Bbc", str(htpasswd), USER, SECRET], check=True,
                   capture_output=True)
    config = tmp_path / "registry.yml"
    config.write_text(json.dumps({
        "version": 0.1, "storage": {"filesystem": {"rootdirectory": str(tmp_path / "data")}},
        "http": {"addr": f"127.0.0.1:{port}"},
        "auth": {"htpasswd": {"realm": "test", "path": str(htpasswd)}}}))
    proc = subprocess.Popen(["docker-registry", "serve", str(config)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        _wait_for(port)
        authfile = tmp_path / "auth.json"
        token = base64.b64encode(f"{USER}:{SECRET}".encode()).decode()
        authfile.write_text(json.dumps({"auths": {f"127.0.0.1:{port}": {"auth": token}}}))
        yield f"127.0.0.1:{port}", authfile
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def _wait_for(port: int) -> None:
    for _ in range(100):
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    raise RuntimeError("docker-registry did not start")


def multi_arch_layout(tmp_path: Path) -> Path:
    """A layout whose tag ``multi`` is an index of amd64, arm/v7 and arm64/v8 images."""
    layout = tmp_path / "multi"
    writer = LayoutWriter(layout)
    entries = []
    for arch, variant in (("amd64", None), ("arm", "v7"), ("arm64", "v8")):
        layer = LayerBlob(tar_bytes([TarEntry("arch", data=f"{arch}{variant or ''}".encode())]))
        config = {"architecture": arch, **({"variant": variant} if variant else {})}
        digest = writer.add_image(arch, [layer], config)
        size = oci.blob_path(layout, digest).stat().st_size
        platform = {"os": "linux", "architecture": arch, **({"variant": variant} if variant
                                                           else {})}
        entries.append({"mediaType": oci.OCI_MANIFEST, "digest": digest, "size": size,
                        "platform": platform})
    index = json.dumps({"schemaVersion": 2, "mediaType": oci.OCI_INDEX, "manifests": entries})
    digest, size = oci.write_blob(layout, index.encode())
    (layout / "index.json").write_text(json.dumps({"schemaVersion": 2, "manifests": [
        {"mediaType": oci.OCI_INDEX, "digest": digest, "size": size,
         "annotations": {oci.REF_NAME: "multi"}}]}))
    return layout


@pytest.mark.parametrize(("arch", "expected"), [("arm64", b"arm64v8"), ("linux/arm/v7",
                                                                          b"armv7")])
def test_multi_arch_pull_picks_by_hepbuild_rules(tmp_path: Path, registry: tuple[str, Path],
                                                 arch: str, expected: bytes,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    host, authfile = registry
    layout = multi_arch_layout(tmp_path)
    subprocess.run(["skopeo", "copy", "--quiet", "--all", "--dest-tls-verify=false",
                    f"--dest-authfile={authfile}", f"oci:{layout}:multi",
                    f"docker://{host}/hep/multi:1"], check=True, capture_output=True)
    argv_log = tmp_path / "argv.log"
    monkeypatch.setenv("HEPBUILD_ARGV_LOG", str(argv_log))
    convert(f"docker://{host}/hep/multi:1", f"sandbox:{tmp_path / 'sb'}", arch=arch,
            authfile=authfile, tls_verify=False)
    assert (tmp_path / "sb" / "arch").read_bytes() == expected
    assert SECRET not in argv_log.read_text() and USER not in argv_log.read_text()


def test_push_to_registry_and_back_to_sif(tmp_path: Path, registry: tuple[str, Path]) -> None:
    host, authfile = registry
    writer = LayoutWriter(tmp_path / "img")
    writer.add_image("t", [LayerBlob(tar_bytes([TarEntry("hello.txt", data=b"hello")]))])
    convert(f"oci:{tmp_path / 'img'}:t", f"docker://{host}/hep/app:1", authfile=authfile,
            tls_verify=False)
    result = convert(f"docker://{host}/hep/app:1", f"sif:{tmp_path / 'app.sif'}",
                     authfile=authfile, tls_verify=False)
    assert result.format == "sif" and result.size == (tmp_path / "app.sif").stat().st_size
    convert(f"sif:{tmp_path / 'app.sif'}", f"sandbox:{tmp_path / 'sb'}")
    assert (tmp_path / "sb" / "hello.txt").read_bytes() == b"hello"


def test_wrong_credentials_fail_clearly(tmp_path: Path, registry: tuple[str, Path]) -> None:
    host, _ = registry
    with pytest.raises(ToolError, match="skopeo"):
        convert(f"docker://{host}/hep/none:1", f"sif:{tmp_path / 'x.sif'}", tls_verify=False)
    assert not (tmp_path / "x.sif").exists()
