"""Real pushes and pulls against docker-registry in its three set-ups."""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import pytest
from registry_fixtures import (  # noqa: F401
    ROBOT_USER,
    USERS,
    client_for_registry,
    make_oci_layout,
    make_sif,
    registry_http,
    registry_tls,
    registry_token,
)

from hepbuild import tools
from hepbuild.registry import media
from hepbuild.registry.auth import Credentials, authfile_for
from hepbuild.registry.oras import pull_sif, push_sif, push_sif_set
from hepbuild.registry.push import push_image_layout
from hepbuild.registry.reference import parse_reference
from hepbuild.registry.server import LocalRegistry

pytestmark = [pytest.mark.registry, pytest.mark.xdist_group("registry")]
SETUPS = ["registry_http", "registry_tls", "registry_token"]


@pytest.fixture(params=SETUPS)
def registry(request: pytest.FixtureRequest) -> LocalRegistry:
    return request.getfixturevalue(request.param)


def _sha(path: Path) -> str:
    return "sha256:" + hashlib.sha256(path.read_bytes()).hexdigest()


def test_multiarch_oci_image_round_trip_and_second_push_sends_nothing(
    registry: LocalRegistry, tmp_path: Path
) -> None:
    layout = make_oci_layout(tmp_path / "layout")
    ref = parse_reference(f"docker://{registry.url}/library/multi-{registry.mode}:1.0")
    with client_for_registry(registry) as client:
        first = push_image_layout(client, layout, ref, "1.0")
        uploads_after_first = registry.blob_uploads()
        second = push_image_layout(client, layout, ref, "1.0")

        index = client.get_manifest(ref.repository, "1.0")
        assert index.media_type == media.OCI_INDEX
        assert index.digest == first.digest == second.digest
        assert (layout / "blobs" / "sha256" / index.digest[7:]).read_bytes() == index.data
        _check_children(client, ref.repository, index.json(), layout, tmp_path)

    blob_bytes = sum(p.stat().st_size for p in (layout / "blobs" / "sha256").iterdir())
    assert first.bytes_uploaded > 0
    assert first.bytes_uploaded <= blob_bytes
    assert second.bytes_uploaded == 0
    assert registry.blob_uploads() == uploads_after_first  # the registry saw no new upload


def _check_children(client, repo: str, index: dict, layout: Path, tmp_path: Path) -> None:  # noqa: ANN001
    platforms = sorted(m["platform"]["architecture"] for m in index["manifests"])
    assert platforms == ["amd64", "arm64"]
    for entry in index["manifests"]:
        manifest = client.get_manifest(repo, entry["digest"])
        assert manifest.digest == entry["digest"]
        for blob in [manifest.json()["config"], *manifest.json()["layers"]]:
            out = tmp_path / blob["digest"][7:]
            assert client.get_blob(repo, blob["digest"], out) == blob["size"]
            assert (
                out.read_bytes() == (layout / "blobs" / "sha256" / blob["digest"][7:]).read_bytes()
            )


def test_per_arch_sifs_with_index_pulled_back_by_arch(
    registry: LocalRegistry, tmp_path: Path
) -> None:
    sifs = {
        arch: make_sif(tmp_path / f"hello-{arch}.sif", arch) for arch in ("x86_64", "arm64", "arm")
    }
    ref = parse_reference(f"oras://{registry.url}/library/sif-{registry.mode}:2.0")
    with client_for_registry(registry) as client:
        result = push_sif_set(client, list(sifs.values()), ref)
        again = push_sif_set(client, list(sifs.values()), ref)
        index = client.get_manifest(ref.repository, "2.0")

        platforms = {
            (m["platform"]["architecture"], m["platform"].get("variant"))
            for m in index.json()["manifests"]
        }
        assert platforms == {("amd64", None), ("arm64", "v8"), ("arm", "v7")}
        assert sorted(client.list_tags(ref.repository)) == [
            "2.0",
            "2.0-arm",
            "2.0-arm64",
            "2.0-x86_64",
        ]
        for arch, path in sifs.items():
            out = tmp_path / f"back-{arch}.sif"
            pulled = pull_sif(client, ref, out, arch)
            assert out.read_bytes() == path.read_bytes()
            assert pulled.layer_digest == _sha(path)
    # No inspect-metadata.json in these SIFs: like Apptainer, 'created' is the push time, so
    # only the second push's manifests are what the tag holds now.
    assert again.digest == index.digest
    assert result.children[0].size == again.children[0].size
    assert result.bytes_uploaded == sum(p.stat().st_size for p in sifs.values()) + 2
    assert again.bytes_uploaded == 0


def test_g1_g2_sif_manifest_as_apptainer_writes_it(
    registry_http: LocalRegistry,  # noqa: F811
    tmp_path: Path,
) -> None:
    path = make_sif(tmp_path / "hello.sif", "x86_64")
    ref = parse_reference(f"oras://{registry_http.url}/library/hello:g1")
    with client_for_registry(registry_http) as client:
        pushed = push_sif(client, path, ref)
        manifest = client.get_manifest(ref.repository, "g1")
        document = manifest.json()
        config = client.get_blob_bytes(ref.repository, document["config"]["digest"])

    assert manifest.media_type == media.OCI_MANIFEST  # the registry echoes our Content-Type
    assert list(document) == ["schemaVersion", "mediaType", "config", "layers", "annotations"]
    assert document["config"] == {
        "mediaType": "application/vnd.sylabs.sif.config.v1+json",
        "size": 2,
        "digest": "sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a",
        "data": "e30=",
    }
    assert config == b"{}"
    assert document["layers"] == [
        {
            "mediaType": "application/vnd.sylabs.sif.layer.v1.sif",
            "size": path.stat().st_size,
            "digest": _sha(path),
            "annotations": {"org.opencontainers.image.title": "hello.sif"},
        }
    ]
    assert set(document["annotations"]) == {"org.opencontainers.image.created"}
    assert pushed.digest == manifest.digest


def test_pull_refuses_a_layer_that_is_not_a_sif(
    registry_http: LocalRegistry,  # noqa: F811
    tmp_path: Path,
) -> None:
    from dataclasses import replace

    from hepbuild.errors import ImageError
    from hepbuild.registry.oras import sif_config_descriptor, sif_manifest

    repo = "library/fake"
    with client_for_registry(registry_http) as client:
        client.push_blob(repo, b"{}")
        layer, _ = client.push_blob(repo, b"not a sif at all" * 100)
        layer = replace(layer, media_type=media.SIF_LAYER_LEGACY)
        client.put_manifest(repo, "x", sif_manifest(layer, None), media.OCI_MANIFEST)
        with pytest.raises(ImageError, match="not a SIF"):
            pull_sif(client, f"oras://{registry_http.url}/{repo}:x", tmp_path / "out.sif")
    assert sif_config_descriptor().size == 2
    assert not (tmp_path / "out.sif").exists()
    assert not list(tmp_path.iterdir())


def test_skopeo_reads_what_we_pushed_through_an_auth_file(
    registry: LocalRegistry, tmp_path: Path
) -> None:
    layout = make_oci_layout(tmp_path / "layout", arches=("x86_64",))
    ref = parse_reference(f"docker://{registry.url}/library/skopeo-{registry.mode}:1.0")
    with client_for_registry(registry) as client:
        pushed = push_image_layout(client, layout, ref)

    skopeo = tools.find_tool("skopeo").path
    tls = ["--tls-verify=false"]
    if registry.ca_file:
        certs = tmp_path / "certs"
        certs.mkdir()
        shutil.copy(registry.ca_file, certs / "ca.crt")
        tls = ["--cert-dir", str(certs)]
    credentials = Credentials(ROBOT_USER, USERS[ROBOT_USER]) if registry.mode != "http" else None
    with authfile_for(registry.url, credentials) as authfile:
        assert authfile.stat().st_mode & 0o777 == 0o600
        raw = tools.run(
            [skopeo, "inspect", "--raw", "--authfile", authfile, *tls, f"docker://{ref}"],
            quiet=True,
        ).stdout
    assert not authfile.exists()
    assert "sha256:" + hashlib.sha256(raw).hexdigest() == pushed.digest
    assert json.loads(raw)["mediaType"] == media.OCI_INDEX


@pytest.mark.parametrize("setup", ["registry_tls", "registry_token"])
def test_auth_registries_refuse_anonymous_and_wrong_users(
    setup: str, request: pytest.FixtureRequest
) -> None:
    from hepbuild.errors import AuthError
    from hepbuild.registry.client import RegistryClient

    registry: LocalRegistry = request.getfixturevalue(setup)
    tokens_before = registry.tokens_issued
    with (
        RegistryClient(registry.url, ca_file=str(registry.ca_file)) as anonymous,
        pytest.raises(AuthError, match="needs credentials"),
    ):
        anonymous.list_tags("library/anything")
    wrong = Credentials("alice", "not-her-password")
    with (
        RegistryClient(registry.url, ca_file=str(registry.ca_file), credentials=wrong) as client,
        pytest.raises(AuthError, match="refused the credentials of 'alice'"),
    ):
        client.blob_exists("library/anything", "sha256:" + "0" * 64)
    with client_for_registry(registry, "alice") as client:
        assert client.list_tags("library/nothing-here") == []
    if setup == "registry_token":
        assert registry.tokens_issued == tokens_before + 1  # one GET /service/token for alice


def test_pull_takes_the_legacy_layer_type_and_wants_exactly_one_layer(
    registry_http: LocalRegistry,  # noqa: F811
    tmp_path: Path,
) -> None:
    from dataclasses import replace

    from hepbuild.errors import RegistryError
    from hepbuild.registry.oras import go_json, sif_config_descriptor, sif_manifest

    path = make_sif(tmp_path / "old.sif", "x86_64")
    repo = "library/legacy"
    with client_for_registry(registry_http) as client:
        client.push_blob(repo, b"{}")
        layer, _ = client.push_blob(repo, path)
        legacy = replace(layer, media_type=media.SIF_LAYER_LEGACY)
        client.put_manifest(repo, "old", sif_manifest(legacy, ""), media.OCI_MANIFEST)
        pulled = pull_sif(client, f"oras://{registry_http.url}/{repo}:old", tmp_path / "o.sif")
        assert (tmp_path / "o.sif").read_bytes() == path.read_bytes()
        assert pulled.layer_digest == layer.digest

        sif_layer = replace(layer, media_type=media.SIF_LAYER).to_json()
        two = go_json(
            {
                "schemaVersion": 2,
                "mediaType": media.OCI_MANIFEST,
                "config": sif_config_descriptor().to_json(),
                "layers": [sif_layer, sif_layer],
            }
        )
        client.put_manifest(repo, "two", two, media.OCI_MANIFEST)
        with pytest.raises(RegistryError, match="has 2 layers"):
            pull_sif(client, f"oras://{registry_http.url}/{repo}:two", tmp_path / "t.sif")
    assert not (tmp_path / "t.sif").exists()


def test_tls_mistakes_are_named_not_retried(
    registry_tls: LocalRegistry,  # noqa: F811
    registry_http: LocalRegistry,  # noqa: F811
) -> None:
    from hepbuild.errors import RegistryError
    from hepbuild.registry.client import RegistryClient

    with (
        RegistryClient(registry_tls.url) as untrusted,
        pytest.raises(RegistryError, match="is not trusted") as caught,
    ):
        untrusted.list_tags("library/x")
    assert "--ca-file" in (caught.value.hint or "")
    with (
        RegistryClient(registry_http.url) as wrong_scheme,
        pytest.raises(RegistryError, match="TLS with") as caught,
    ):
        wrong_scheme.list_tags("library/x")
    assert "--insecure" in (caught.value.hint or "")
    assert untrusted.stats.retries == wrong_scheme.stats.retries == 0
