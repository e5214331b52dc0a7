"""`hepbuild registry start|stop|status` as a daemon, push/pull of an OCI layout through the
CLI, tags, referrers (tag fallback) and deletion against the real registry."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest
from oci_layouts import LayerBlob, LayoutWriter, TarEntry, tar_bytes
from registry_fixtures import (  # noqa: F401
    client_for_registry,
    make_oci_layout,
    make_sif,
    registry_http,
)

from hepbuild.cli import main
from hepbuild.platforms import get_arch, host_arch
from hepbuild.registry import media
from hepbuild.registry.client import Descriptor, referrers_tag
from hepbuild.registry.oras import go_json
from hepbuild.registry.server import LocalRegistry, free_port, running_pid

pytestmark = [pytest.mark.registry, pytest.mark.xdist_group("registry")]


def _hepbuild(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "hepbuild", *args],
        capture_output=True,
        text=True,
        timeout=120,
        env=dict(os.environ),
    )


def test_registry_daemon_start_is_idempotent_then_stops(tmp_path: Path) -> None:
    folder = tmp_path / "reg"
    port = str(free_port())
    try:
        first = _hepbuild("registry", "start", "--dir", str(folder), "--port", port)
        assert first.returncode == 0, first.stderr
        assert f"started at 127.0.0.1:{port}" in first.stdout
        again = _hepbuild("registry", "start", "--dir", str(folder), "--port", port)
        assert again.returncode == 0 and "already running" in again.stdout
        status = json.loads(_hepbuild("registry", "status", "--dir", str(folder), "--json").stdout)
        assert status["state"] == "running" and status["url"] == f"127.0.0.1:{port}"
        assert status["pid"] == running_pid(folder)
    finally:
        stopped = _hepbuild("registry", "stop", "--dir", str(folder))
    assert stopped.returncode == 0 and "stopped" in stopped.stdout
    after = _hepbuild("registry", "status", "--dir", str(folder))
    assert after.returncode == 1 and "not running" in after.stdout
    assert running_pid(folder) is None


def test_cli_push_of_an_oci_layout_prints_the_summary(
    registry_http: LocalRegistry,  # noqa: F811
    tmp_path: Path,
) -> None:
    layout = make_oci_layout(tmp_path / "layout", tag="3.1")
    dest = f"docker://{registry_http.url}/library/cli:3.1"
    table = _hepbuild("push", "--insecure", f"oci:{layout}:3.1", dest)
    assert table.returncode == 0, table.stderr
    assert "REFERENCE" in table.stdout and "BYTES UPLOADED" in table.stdout
    again = _hepbuild("push", "--insecure", "--json", f"oci:{layout}:3.1", dest)
    result = json.loads(again.stdout)["result"]
    assert result["bytes_uploaded"] == 0
    assert result["media_type"] == media.OCI_INDEX
    wrong = _hepbuild("push", "--insecure", f"oci:{layout}:nope", dest)
    assert wrong.returncode == 2 and "no image tagged 'nope'" in wrong.stderr


def test_referrers_tag_fallback_and_delete(registry_http: LocalRegistry) -> None:  # noqa: F811
    repo = "library/refs"
    with client_for_registry(registry_http) as client:
        config, _ = client.push_blob(repo, b"{}")
        subject = go_json(
            {
                "schemaVersion": 2,
                "mediaType": media.OCI_MANIFEST,
                "config": Descriptor(media.SIF_CONFIG, config.digest, 2).to_json(),
                "layers": [],
            }
        )
        subject_digest = client.put_manifest(repo, "subject", subject, media.OCI_MANIFEST)
        assert client.referrers(repo, subject_digest) == []

        sbom = go_json(
            {
                "schemaVersion": 2,
                "mediaType": media.OCI_MANIFEST,
                "artifactType": "application/vnd.example.sbom",
                "config": Descriptor(media.SIF_CONFIG, config.digest, 2).to_json(),
                "layers": [],
                "subject": Descriptor(media.OCI_MANIFEST, subject_digest, len(subject)).to_json(),
            }
        )
        sbom_digest = client.put_manifest(repo, "sbom", sbom, media.OCI_MANIFEST)
        entry = Descriptor(
            media.OCI_MANIFEST,
            sbom_digest,
            len(sbom),
            artifact_type="application/vnd.example.sbom",
        )
        index = go_json(
            {"schemaVersion": 2, "mediaType": media.OCI_INDEX, "manifests": [entry.to_json()]}
        )
        client.put_manifest(repo, referrers_tag(subject_digest), index, media.OCI_INDEX)
        found = client.referrers(repo, subject_digest, "application/vnd.example.sbom")
        assert [d.digest for d in found] == [entry.digest]
        assert client.referrers(repo, subject_digest, "application/other") == []

        client.delete_manifest(repo, subject_digest)
        assert client.manifest_exists(repo, subject_digest) is None


def test_cli_push_converts_other_transports_first(
    registry_http: LocalRegistry,  # noqa: F811
    tmp_path: Path,
) -> None:
    sandbox = tmp_path / "rootfs"
    (sandbox / "etc").mkdir(parents=True)
    (sandbox / "etc" / "hello").write_text("from a sandbox\n")
    first = f"docker://{registry_http.url}/library/from-sandbox:1"
    pushed = _hepbuild("push", "--insecure", "--json", f"sandbox:{sandbox}", first)
    assert pushed.returncode == 0, pushed.stderr
    digest = json.loads(pushed.stdout)["result"]["digest"]

    # A docker:// source is fetched by skopeo (through `hepbuild convert`) and pushed again.
    second = f"docker://{registry_http.url}/library/copied:1"
    copied = _hepbuild("push", "--insecure", "--json", first, second)
    assert copied.returncode == 0, copied.stderr

    with client_for_registry(registry_http) as client:
        manifest = client.get_manifest("library/from-sandbox", "1").json()
        layer = manifest["layers"][0]
        out = tmp_path / "layer"
        client.get_blob("library/from-sandbox", layer["digest"], out)
        copy = client.get_manifest("library/copied", "1").json()
    assert digest.startswith("sha256:")
    assert copy["layers"][0]["digest"] == layer["digest"]
    with tarfile.open(out) as tar:
        member = tar.extractfile("etc/hello")
        assert member is not None and member.read() == b"from a sandbox\n"


def test_registry_start_on_a_busy_port_says_so(tmp_path: Path) -> None:
    import socket

    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        result = _hepbuild("registry", "start", "--dir", str(tmp_path / "r"), "--port", str(port))
    assert result.returncode == 9  # RegistryError
    assert f"port {port} on 127.0.0.1 is already in use" in result.stderr
    assert running_pid(tmp_path / "r") is None


def test_pull_into_a_folder_refuses_to_overwrite_and_leaves_no_temp_file(
    registry_http: LocalRegistry,  # noqa: F811
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    sif_path = make_sif(tmp_path / "pulled.sif", host_arch().name, payload_size=8192)
    ref = f"oras://{registry_http.url}/library/pull-dest:1"
    assert main(["push", "--insecure", "--json", str(sif_path), ref]) == 0
    pushed = json.loads(capsys.readouterr().out)
    assert set(pushed["rows"][0]) == {"reference", "arch", "digest", "size", "bytes_uploaded"}
    assert pushed["result"]["arch"] == host_arch().name

    folder = tmp_path / "trial"
    folder.mkdir()
    assert main(["pull", "--insecure", "--json", ref, str(folder)]) == 0
    pulled = json.loads(capsys.readouterr().out)
    written = folder / "pulled.sif"  # the layer's title, as Apptainer names it
    assert written.read_bytes() == sif_path.read_bytes()
    assert pulled["path"] == str(written) and pulled["arch"] == host_arch().name

    assert main(["pull", "--insecure", ref, str(folder)]) == 2
    err = capsys.readouterr().err
    assert f"{written} already exists" in err and "--force" in err and "Traceback" not in err
    written.write_bytes(b"old")
    assert main(["pull", "--insecure", "--force", ref, str(written)]) == 0
    capsys.readouterr()
    assert written.read_bytes() == sif_path.read_bytes()
    assert sorted(p.name for p in folder.iterdir()) == ["pulled.sif"]
    assert not list(tmp_path.glob(".*.pull"))


def test_push_json_of_a_single_platform_layout_names_the_centre_arch(
    registry_http: LocalRegistry,  # noqa: F811
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    arm64 = get_arch("arm64")
    platform = {"architecture": arm64.oci, "os": "linux", "variant": str(arm64.variant)}
    layer = LayerBlob(tar_bytes([TarEntry("hello", data=b"arm")]))
    LayoutWriter(tmp_path / "one").add_image("1", [layer], platform=platform)
    dest = f"docker://{registry_http.url}/library/one-arch:1"
    assert main(["push", "--insecure", "--json", f"oci:{tmp_path / 'one'}:1", dest]) == 0
    result = json.loads(capsys.readouterr().out)["result"]
    assert (result["arch"], result["platform"]) == ("arm64", arm64.platform)
