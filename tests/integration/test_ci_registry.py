"""Content-key skips against a real docker-registry, and list assembly from per-arch tags.

Images are written with hepbuild's registry client: a config carrying the content key label
and one small layer, exactly what the planner reads back (manifest -> config -> label).
"""

from __future__ import annotations

import datetime as dt
import gzip
import hashlib
import io
import json
import tarfile
from pathlib import Path

import git
import pytest
import yaml

from hepbuild import naming
from hepbuild.ci import keys
from hepbuild.ci.assemble import assemble_list
from hepbuild.ci.project import load_snapshot
from hepbuild.cli import main
from hepbuild.registry import media
from hepbuild.registry.client import RegistryClient
from hepbuild.registry.server import LocalRegistry
from hepbuild.release.store import RegistryStore
from tests.integration.registry_fixtures import registry_http  # noqa: F401
from tests.unit.test_ci_git import ALL_CELLS, edit, write_project

pytestmark = pytest.mark.registry


def tiny_layer(text: str) -> bytes:
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as tar:
        data = text.encode()
        info = tarfile.TarInfo("etc/hepbuild-test")
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
    return gzip.compress(raw.getvalue(), mtime=0)


def push_image(client: RegistryClient, ref: str, labels: dict[str, str], arch: str) -> str:
    _, repo, tag = keys.split_ref(ref)
    layer = tiny_layer(ref)
    config = json.dumps({
        "architecture": arch, "os": "linux", "config": {"Labels": labels},
        "rootfs": {"type": "layers", "diff_ids": [
            "sha256:" + hashlib.sha256(gzip.decompress(layer)).hexdigest()]},
    }).encode()
    config_desc, _ = client.push_blob(repo, config)
    layer_desc, _ = client.push_blob(repo, layer)
    manifest = {
        "schemaVersion": 2, "mediaType": media.OCI_MANIFEST,
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                   "digest": config_desc.digest, "size": config_desc.size},
        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip",
                    "digest": layer_desc.digest, "size": layer_desc.size}],
    }
    return client.put_manifest(repo, tag, json.dumps(manifest).encode(), media.OCI_MANIFEST)


@pytest.fixture
def published_project(
    tmp_path: Path, registry_http: LocalRegistry  # noqa: F811
) -> tuple[git.Repo, RegistryClient]:
    """A project whose every cell is in the registry with its current content key.

    Each test gets its own registry namespace (the registry is shared by the worker).
    """
    namespace = f"{registry_http.url}/{tmp_path.name.lower()}"
    repo = write_project(tmp_path / "project", registry=namespace)
    snap = load_snapshot(tmp_path / "project", None, {})
    client = RegistryClient(registry_http.url, insecure=True)
    for cell in snap.cells:
        ref = naming.arch_ref(snap.config.profile.registry, cell)
        push_image(client, ref, {keys.CONTENT_KEY_LABEL: snap.content_key(cell)}, cell.arch.oci)
    return repo, client


def plan_json(root: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
              *args: str) -> dict:
    monkeypatch.chdir(root)
    assert main(["ci", "plan", "--output", "child.yml", "--json", *args]) == 0
    return json.loads(capsys.readouterr().out)


def test_registry_content_key_reads_the_label(
    published_project: tuple[git.Repo, RegistryClient], registry_http: LocalRegistry  # noqa: F811
) -> None:
    repo, client = published_project
    snap = load_snapshot(Path(str(repo.working_tree_dir)), None, {})
    cell = snap.cells[0]
    ref = naming.arch_ref(snap.config.profile.registry, cell)
    assert keys.registry_content_key(ref, insecure=True) == snap.content_key(cell)
    assert keys.registry_content_key(ref.replace(":0.1-", ":9.9-"), insecure=True) is None
    push_image(client, ref.replace(":0.1-", ":0.2-"), {"other": "label"}, "amd64")
    assert keys.registry_content_key(ref.replace(":0.1-", ":0.2-"), insecure=True) is None


def test_second_run_skips_every_cell_and_builds_nothing(
    published_project: tuple[git.Repo, RegistryClient], monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    root = Path(str(published_project[0].working_tree_dir))
    document = plan_json(root, monkeypatch, capsys, "--all")
    assert sorted(c["cell"] for c in document["cells"]) == ALL_CELLS
    assert {c["action"] for c in document["cells"]} == {"skip"}
    child = yaml.safe_load((root / "child.yml").read_text())
    assert [k for k in child if k != "stages"] == ["nothing-to-build"]

    forced = plan_json(root, monkeypatch, capsys, "--all", "--force")
    assert {c["action"] for c in forced["cells"]} == {"build"}


def test_a_changed_recipe_with_a_stale_image_is_built_with_its_child(
    published_project: tuple[git.Repo, RegistryClient], monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    repo = published_project[0]
    before = edit(repo, "recipes/site/base/recipe.yaml", "[bash]", "[bash, procps]")
    root = Path(str(repo.working_tree_dir))
    document = plan_json(root, monkeypatch, capsys, "--since", before)
    assert sorted(c["cell"] for c in document["cells"] if c["action"] == "build") == [
        "site/base-deb12-arm64", "site/base-deb12-x86_64", "site/base-el9-x86_64",
        "site/child-deb12-arm64", "site/child-deb12-x86_64", "site/child-el9-x86_64"]


def test_assemble_writes_the_dated_list_of_every_arch_and_moves_no_tag(
    published_project: tuple[git.Repo, RegistryClient],
) -> None:
    repo, client = published_project
    snap = load_snapshot(Path(str(repo.working_tree_dir)), None, {})
    cells = [c for c in snap.cells if c.image_key == "site/base-deb12"]
    when = dt.datetime(2026, 12, 4, 3, 0, 0, tzinfo=dt.timezone.utc)
    result = assemble_list(RegistryStore(client), snap.config, cells, when)
    _, list_repo, list_tag = keys.split_ref(result.ref)
    assert list_tag == naming.dated_tag(cells[0], when)
    stored = client.get_manifest(list_repo, list_tag)
    assert stored.digest == result.digest and stored.is_index
    platforms = sorted((m["platform"]["architecture"], m["platform"].get("variant"))
                       for m in stored.json()["manifests"])
    assert platforms == [("amd64", None), ("arm64", "v8")]
    # The moving tags are the publish stage's: assembling moves neither of them.
    assert client.manifest_exists(list_repo, naming.version_tag(cells[0])) is None
    assert client.manifest_exists(list_repo, naming.latest_tag(cells[0])) is None
    # Assembling again at the same time finds the same bytes and leaves them alone.
    again = assemble_list(RegistryStore(client), snap.config, cells, when)
    assert again.digest == result.digest


def test_assemble_command_and_unknown_image(
    published_project: tuple[git.Repo, RegistryClient], monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.chdir(Path(str(published_project[0].working_tree_dir)))
    assert main(["ci", "assemble", "exp/tool-deb12", "--json",
                 "--time", "2026-12-04T03:00:00Z"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["ref"].endswith("/exp/tool:2.0-deb12-20261204T030000Z")
    assert result["cells"] == ["exp/tool-deb12-arm64", "exp/tool-deb12-x86_64"]
    assert main(["ci", "assemble", "exp/nothing-deb12"]) == 2
    assert "no cell of the matrix belongs to image 'exp/nothing-deb12'" in capsys.readouterr().err
