"""Publish, history and rollback against Debian's docker-registry (no referrers API)."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest
from registry_fixtures import registry_http  # noqa: F401

from hepbuild import naming
from hepbuild.build.results import BuiltImage
from hepbuild.config.model import Base, Cell, Config, Matrix, Profile, Recipe, Registry
from hepbuild.errors import RegistryError, UsageError
from hepbuild.platforms import get_arch
from hepbuild.registry.client import RegistryClient
from hepbuild.registry.media import OCI_MANIFEST, SIF_CONFIG, SIF_LAYER
from hepbuild.registry.server import LocalRegistry
from hepbuild.release.history import TagScheme, read_history
from hepbuild.release.publish import BuildInputs, Provenance, publish_all
from hepbuild.release.records import (
    BUILD_RECORD_TYPE,
    ROLLBACK_RECORD_TYPE,
    fallback_tag,
    find_build_records,
    list_referrers,
)
from hepbuild.release.rollback import RollbackRequest, rollback
from hepbuild.release.store import RegistryStore
from hepbuild.release.versions import PublishBlocked, publish_image, repository_path

pytestmark = pytest.mark.registry

T1 = dt.datetime(2026, 12, 1, 10, 0, 0, tzinfo=dt.timezone.utc)
T2 = dt.datetime(2026, 12, 2, 11, 30, 0, tzinfo=dt.timezone.utc)
T3 = dt.datetime(2026, 12, 3, 12, 45, 0, tzinfo=dt.timezone.utc)
ARCHES = ("x86_64", "arm64")


def make_cells(name: str, version: str, arches: tuple[str, ...], *, sif: bool = False
               ) -> list[Cell]:
    outputs = ("oci", "sif") if sif else ("oci",)
    recipe = Recipe(group="hep", name=name, version=version, directory=Path("."), outputs=outputs)
    base = Base(name="el9", family="yum", arches=arches, images={})
    return [Cell(recipe, base, get_arch(a)) for a in arches]


def push_arch_image(client: RegistryClient, registry: Registry, cell: Cell, content: bytes
                    ) -> BuiltImage:
    """One tiny OCI image for the cell at its per-arch tag, as a build would leave it."""
    repo = repository_path(registry, naming.repository(registry, cell.recipe))
    layer, _ = client.push_blob(repo, content)
    config = json.dumps({"architecture": cell.arch.oci, "os": "linux",
                         "rootfs": {"type": "layers", "diff_ids": [layer.digest]}}).encode()
    config_desc, _ = client.push_blob(repo, config)
    manifest = {
        "schemaVersion": 2, "mediaType": OCI_MANIFEST,
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                   "digest": config_desc.digest, "size": len(config)},
        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar",
                    "digest": layer.digest, "size": len(content)}],
    }
    digest = client.put_manifest(repo, naming.arch_tag(cell), json.dumps(manifest).encode(),
                                 OCI_MANIFEST)
    return BuiltImage(
        cell_id=cell.id, local_ref=naming.local_name(cell),
        pushed_ref=naming.arch_ref(registry, cell), digest=digest, size=len(content),
        platform=cell.arch.platform, log="/dev/null", seconds=0.1, test_status="passed",
        content_key="ck-" + cell.arch.name, base_digest="sha256:" + "b" * 64,
        image_key=cell.image_key,
    )


def push_arch_sif(client: RegistryClient, registry: Registry, cell: Cell, content: bytes) -> str:
    """An ORAS-style SIF manifest at the per-arch tag of the SIF repository."""
    repo = repository_path(registry, naming.repository(registry, cell.recipe, sif=True))
    config, _ = client.push_blob(repo, b"{}")
    layer, _ = client.push_blob(repo, content)
    manifest = {
        "schemaVersion": 2, "mediaType": OCI_MANIFEST,
        "config": {"mediaType": SIF_CONFIG, "digest": config.digest, "size": 2},
        "layers": [{"mediaType": SIF_LAYER, "digest": layer.digest, "size": len(content),
                    "annotations": {"org.opencontainers.image.title": "image.sif"}}],
    }
    return client.put_manifest(repo, naming.arch_tag(cell), json.dumps(manifest).encode(),
                               OCI_MANIFEST)


def failed(image: BuiltImage, error: str) -> BuiltImage:
    return replace(image, status="failed", error=error, digest=None, pushed_ref=None)


@pytest.fixture()
def store(registry_http: LocalRegistry) -> Iterator[RegistryStore]:  # noqa: F811
    with RegistryClient(registry_http.url, insecure=True) as client:
        yield RegistryStore(client)


def _registry(store: RegistryStore) -> Registry:
    return Registry(name="local", url=store.host, insecure=True)


def _digest(store: RegistryStore, repo: str, tag: str) -> str | None:
    return store.client.manifest_exists(repo, tag)


def test_publish_pushes_dated_then_moving_tags(store: RegistryStore) -> None:
    registry = _registry(store)
    cells = make_cells("pubok", "1.0", ARCHES)
    pairs = [(c, push_arch_image(store.client, registry, c, c.arch.name.encode())) for c in cells]

    release = publish_image(store, pairs, T1, registry=registry)

    repo = "hep/pubok"
    assert release.dated_tag == "1.0-el9-20261201T100000Z"
    assert release.moving_tags == ("1.0-el9", "el9-latest")
    for tag in ("1.0-el9-20261201T100000Z", "1.0-el9", "el9-latest"):
        assert _digest(store, repo, tag) == release.digest
    index = store.client.get_manifest(repo, release.digest).json()
    assert [(m["platform"]["architecture"], m["digest"]) for m in index["manifests"]] == [
        ("arm64", pairs[1][1].digest), ("amd64", pairs[0][1].digest)]
    assert index["manifests"][0]["platform"]["variant"] == "v8"

    assert publish_image(store, pairs, T1, registry=registry) == release  # a retried job
    rebuilt = [(c, push_arch_image(store.client, registry, c, b"new" + c.id.encode()))
               for c in cells]
    with pytest.raises(RegistryError, match="dated tags never move"):
        publish_image(store, rebuilt, T1, registry=registry)
    assert _digest(store, repo, "el9-latest") == release.digest


def test_a_failed_arch_moves_nothing(store: RegistryStore) -> None:
    registry = _registry(store)
    cells = make_cells("pubfail", "1.0", ARCHES)
    good = [(c, push_arch_image(store.client, registry, c, b"v1" + c.id.encode())) for c in cells]
    first = publish_image(store, good, T1, registry=registry)

    rebuilt = [(c, push_arch_image(store.client, registry, c, b"v2" + c.id.encode()))
               for c in cells]
    broken = [rebuilt[0], (rebuilt[1][0], failed(rebuilt[1][1], "RUN step 3 exited 1"))]
    with pytest.raises(PublishBlocked) as caught:
        publish_image(store, broken, T2, registry=registry)

    assert "hep/pubfail-el9-arm64 (arm64): failed - RUN step 3 exited 1" in caught.value.message
    repo = "hep/pubfail"
    assert _digest(store, repo, "1.0-el9") == first.digest
    assert _digest(store, repo, "el9-latest") == first.digest
    assert _digest(store, repo, "1.0-el9-20261202T113000Z") is None


def test_publish_all_writes_records_to_registry_and_disk(store: RegistryStore, tmp_path: Path
                                                         ) -> None:
    registry = _registry(store)
    cells = make_cells("pubrec", "2.1", ("x86_64",))
    image = push_arch_image(store.client, registry, cells[0], b"recorded")
    sif = tmp_path / "dist" / "image.sif"
    sif.parent.mkdir()
    sif.write_bytes(b"SIF-bytes")
    inputs = BuildInputs([image], {cells[0].id: [str(sif)]})
    config = _config(registry, cells[0])
    provenance = Provenance(builder="ci-bot", recipe_commit="c0ffee", when=T1)

    grouped = {cells[0].image_key: [(cells[0], image)]}
    result = publish_all(store, config, grouped, inputs, provenance, tmp_path / "records")

    local = tmp_path / "records" / "hep__pubrec-el9-x86_64.json"
    assert result.records == [str(local)]
    on_disk = json.loads(local.read_text())
    assert on_disk["sif_sha256"] == "sha256:" + hashlib.sha256(b"SIF-bytes").hexdigest()
    assert on_disk["sif_md5"] == hashlib.md5(b"SIF-bytes").hexdigest()
    assert (on_disk["recipe_commit"], on_disk["builder"], on_disk["schema"]) == (
        "c0ffee", "ci-bot", 1)
    assert on_disk["build_time"] == "2026-12-01T10:00:00Z"
    # docker-registry 2.8 has no referrers API, so the record is found via the fallback tag
    assert fallback_tag(str(image.digest)) in store.list_tags("hep/pubrec")
    records = find_build_records(store, "hep/pubrec", str(image.digest))
    assert [r.cell_id for r in records] == ["hep/pubrec-el9-x86_64"]
    assert records[0].oci_digest == image.digest


def test_history_and_rollback_of_oci_and_sif(store: RegistryStore, tmp_path: Path) -> None:
    registry = _registry(store)
    cells = make_cells("roll", "3.0", ("x86_64",), sif=True)
    releases = []
    for when, content in ((T1, b"first"), (T2, b"second")):
        image = push_arch_image(store.client, registry, cells[0], content)
        push_arch_sif(store.client, registry, cells[0], b"SIF" + content)
        releases.append(publish_image(store, [(cells[0], image)], when, registry=registry))

    scheme = TagScheme("el9")
    history = read_history(store, "hep/roll", scheme)
    assert [(r.tag, r.moving) for r in history.versions] == [
        ("3.0-el9-20261202T113000Z", ("3.0-el9", "el9-latest")),
        ("3.0-el9-20261201T100000Z", ()),
    ]
    assert history.versions[1].built == "2026-12-01T10:00:00Z"

    request = RollbackRequest(image="hep/roll-el9", repository="hep/roll",
                              sif_repository="hep/roll-sif", scheme=scheme,
                              to_tag="3.0-el9-20261201T100000Z", user="alice", reason="bad ROOT")
    done = rollback(store, request, T3, tmp_path)

    assert done.digest == releases[0].digest
    for tag in ("3.0-el9", "el9-latest"):
        assert _digest(store, "hep/roll", tag) == releases[0].digest
        assert _digest(store, "hep/roll-sif", tag) == releases[0].sif_digest
    log = [json.loads(line) for line in (tmp_path / "rollbacks.jsonl").read_text().splitlines()]
    assert (log[0]["user"], log[0]["reason"], log[0]["to_tag"]) == (
        "alice", "bad ROOT", "3.0-el9-20261201T100000Z")
    assert {m["old_digest"] for m in log[0]["moves"] if m["repository"] == "hep/roll"} == {
        releases[1].digest}
    referrers = list_referrers(store, "hep/roll", releases[0].digest, ROLLBACK_RECORD_TYPE)
    assert [r["digest"] for r in referrers] == [done.record_digest]
    assert list_referrers(store, "hep/roll", releases[0].digest, BUILD_RECORD_TYPE) == []


def test_rollback_to_a_missing_tag_lists_versions_and_moves_nothing(
    store: RegistryStore, tmp_path: Path
) -> None:
    registry = _registry(store)
    cells = make_cells("rollmiss", "1.0", ("x86_64",))
    image = push_arch_image(store.client, registry, cells[0], b"only")
    release = publish_image(store, [(cells[0], image)], T1, registry=registry)
    request = RollbackRequest(image="hep/rollmiss-el9", repository="hep/rollmiss",
                              sif_repository=None, scheme=TagScheme("el9"),
                              to_tag="0.9-el9-20250101T000000Z", user="bob", reason="test")

    with pytest.raises(UsageError) as caught:
        rollback(store, request, T3, tmp_path)

    assert "no version '0.9-el9-20250101T000000Z'" in caught.value.message
    assert caught.value.hint == "available versions: 1.0-el9-20261201T100000Z"
    assert _digest(store, "hep/rollmiss", "el9-latest") == release.digest
    assert not (tmp_path / "rollbacks.jsonl").exists()
    assert naming.latest_tag(cells[0]) == "el9-latest"


def _config(registry: Registry, cell: Cell) -> Config:
    profile = Profile(name="local", registry=registry)
    matrix = Matrix(path=Path("matrix.yaml"), arches=(cell.arch,), bases={"el9": cell.base},
                    profiles={"local": profile}, default_profile="local")
    return Config(root=Path("."), matrix=matrix, recipes=(cell.recipe,), profile=profile)


def test_rollback_refuses_when_the_sif_of_that_version_is_missing(
    store: RegistryStore, tmp_path: Path
) -> None:
    registry = _registry(store)
    cells = make_cells("rollsif", "1.0", ("x86_64",))
    image = push_arch_image(store.client, registry, cells[0], b"oci-only")
    release = publish_image(store, [(cells[0], image)], T1, registry=registry)
    other = make_cells("rollsif", "0.9", ("x86_64",), sif=True)[0]
    push_arch_sif(store.client, registry, other, b"an older SIF")  # hep/rollsif-sif:0.9-el9-...
    request = RollbackRequest(image="hep/rollsif-el9", repository="hep/rollsif",
                              sif_repository="hep/rollsif-sif", scheme=TagScheme("el9"),
                              to_tag=release.dated_tag, user="dave", reason="test")

    with pytest.raises(UsageError, match="the SIF repository has no"):
        rollback(store, request, T3, tmp_path)
    assert store.list_tags("hep/rollsif-sif") == ["0.9-el9-x86_64"]
