"""Every Harbor REST call we make, checked by Prism against Harbor's published spec."""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import requests
from prism_fixtures import PrismServer, ResponseLog, prism_server_fixture  # noqa: F401
from registry_fixtures import registry_http  # noqa: F401

from hepbuild import naming
from hepbuild.build.results import BuiltImage
from hepbuild.cli import main
from hepbuild.config.model import Base, Cell, Config, Matrix, Profile, Recipe, Registry
from hepbuild.errors import RegistryError
from hepbuild.platforms import get_arch
from hepbuild.registry.client import RegistryClient
from hepbuild.registry.harbor import HarborClient, parse_scan_overview, scan_gate
from hepbuild.registry.media import OCI_MANIFEST
from hepbuild.registry.server import LocalRegistry
from hepbuild.release.publish import BuildInputs, HarborSteps, Provenance, publish_all
from hepbuild.release.store import RegistryStore

pytestmark = [pytest.mark.prism, pytest.mark.xdist_group("prism")]

ROBOT = "robot$library+ci"
SECRET = "s3cr3t$1"
WHEN = dt.datetime(2026, 12, 4, 2, 0, 0, tzinfo=dt.timezone.utc)


@dataclass(frozen=True)
class Robot:
    username: str = ROBOT
    password: str = SECRET


class PreferSession(requests.Session):
    """Asks Prism for a given status on calls whose method and path match (Prism's Prefer)."""

    def __init__(self, method: str, path_part: str, code: int) -> None:
        super().__init__()
        self.want = (method, path_part, code)

    def request(self, method: str | bytes, url: str | bytes, *args: Any, **kwargs: Any) -> Any:
        want_method, path_part, code = self.want
        if method == want_method and path_part in str(url):
            kwargs["headers"] = {**(kwargs.get("headers") or {}), "Prefer": f"code={code}"}
        return super().request(method, url, *args, **kwargs)


def _client(
    server: PrismServer, session: requests.Session | None = None
) -> tuple[HarborClient, ResponseLog]:
    log = ResponseLog()
    client = HarborClient(server.url, Robot(), session=session)
    client.session.hooks["response"].append(log.record)
    return client, log


def test_ensure_project_sends_valid_requests(prism_server: PrismServer) -> None:
    client, log = _client(prism_server)
    assert client.project_exists("hep") is True  # Prism's HEAD answers 200
    assert client.create_project("hep", public=False) is True
    assert client.ensure_project("hep", public=True) is False
    assert [r.status_code for r in log.responses] == [200, 201, 200]
    assert log.violations() == []


def test_every_request_carries_a_request_id_and_basic_auth(prism_server: PrismServer) -> None:
    client, log = _client(prism_server)
    client.create_project("hep", public=True)
    sent = log.responses[0].request
    assert len(sent.headers["X-Request-Id"]) == 32
    assert sent.headers["X-Request-Id"] == client.last_request_id
    assert sent.headers["Authorization"] == "Basic cm9ib3QkbGlicmFyeStjaTpzM2NyM3QkMQ=="
    assert sent.body == b'{"project_name": "hep", "metadata": {"public": "true"}}'


def test_existing_project_409_is_not_an_error(prism_server: PrismServer) -> None:
    client, log = _client(prism_server, PreferSession("POST", "/projects", 409))
    assert client.create_project("hep", public=False) is False
    assert log.responses[-1].status_code == 409


def test_prism_rejects_a_malformed_project_request(prism_server: PrismServer) -> None:
    """The check can fail: metadata values must be strings in Harbor's spec."""
    client, log = _client(prism_server)
    with pytest.raises(RegistryError, match="answered 400"):
        client.request("POST", "/projects", ok=(201,),
                       body={"project_name": "hep", "metadata": {"public": True}})
    assert "metadata.public must be string" in log.violations()[0]


def test_labels_found_created_and_attached(prism_server: PrismServer) -> None:
    client, log = _client(prism_server)
    assert client.project_id("hep") == -2147483648  # the spec's example value
    # Prism's example label is named "string": found by name without creating one.
    assert client.find_label("string", 7) == -9007199254740991
    assert client.find_label("hepbuild", 7) is None
    # Prism's Location is not a label URL, so the id is looked up again -> still absent.
    with pytest.raises(RegistryError, match="did not return the id"):
        client.ensure_label("hepbuild", 7)
    assert client.attach_label("hep", "hep/root", "sha256:" + "a" * 64, 12) is True
    label_post = log.responses[-1].request
    artifact = f"/projects/hep/repositories/hep%252Froot/artifacts/sha256:{'a' * 64}"
    assert label_post.path_url == artifact + "/labels"
    assert log.violations() == []


def test_immutable_rule_for_dated_tags(prism_server: PrismServer) -> None:
    client, log = _client(prism_server)
    # Prism's example rule selects the pattern "string", so ours is added
    assert client.ensure_immutable_rule("hep", "*-????????T??????Z") is True
    sent = json.loads(log.responses[-1].request.body or b"{}")
    assert sent["tag_selectors"] == [
        {"kind": "doublestar", "decoration": "matches", "pattern": "*-????????T??????Z"}]
    assert [r.status_code for r in log.responses] == [200, 201]
    assert log.violations() == []


def test_label_already_attached_409_is_fine(prism_server: PrismServer) -> None:
    client, _ = _client(prism_server, PreferSession("POST", "/labels", 409))
    assert client.attach_label("hep", "hep/root", "1.0-el9", 12) is False


def test_scan_trigger_and_overview(prism_server: PrismServer) -> None:
    client, log = _client(prism_server)
    assert client.trigger_scan("hep", "hep/root", "1.0-el9") is True
    assert log.responses[-1].status_code == 202
    overview = client.scan_overview("hep", "hep/root", "1.0-el9")
    assert overview is not None
    assert (overview.status, overview.severity, overview.counts) == (
        "Success", "High", {"Critical": 5, "High": 5})
    scan_gate(overview, "High")
    with pytest.raises(RegistryError, match="severity High is above Medium"):
        scan_gate(overview, "Medium")
    assert log.violations() == []


def test_unscannable_artifact_422_warns(
    prism_server: PrismServer, capsys: pytest.CaptureFixture[str]
) -> None:
    client, _ = _client(prism_server, PreferSession("POST", "/scan", 422))
    assert client.trigger_scan("hep", "hep/root", "1.0-el9") is False
    assert "Harbor cannot scan hep/hep/root@1.0-el9" in capsys.readouterr().err


def test_secret_never_in_errors(prism_server: PrismServer) -> None:
    client, _ = _client(prism_server, PreferSession("GET", "/artifacts", 404))
    with pytest.raises(RegistryError) as caught:
        client.artifact("hep", "hep/root", "nope")
    assert SECRET not in caught.value.render()
    assert "answered 404" in caught.value.message
    assert parse_scan_overview(None) is None


def _harbor_config(registry_url: str, prism_url: str, root: Path, name: str) -> tuple[Config, Cell]:
    registry = Registry(name="harbor", url=registry_url, kind="harbor", insecure=True,
                        project="hep", api=prism_url)
    recipe = Recipe(group="juno", name=name, version="3.1", directory=Path("."))
    base = Base(name="el9", family="yum", arches=("x86_64",), images={})
    cell = Cell(recipe, base, get_arch("x86_64"))
    profile = Profile(name="prod", registry=registry)
    config = Config(root=root, recipes=(recipe,), profile=profile, matrix=Matrix(
        path=root / "matrix.yaml", arches=(cell.arch,), bases={"el9": base},
        profiles={"prod": profile}, default_profile="prod"))
    return config, cell


@pytest.mark.registry
def test_publish_on_a_harbor_profile_makes_valid_harbor_calls(
    prism_server: PrismServer, registry_http: LocalRegistry, tmp_path: Path,  # noqa: F811
) -> None:
    config, cell = _harbor_config(registry_http.url, prism_server.url, tmp_path, "offline")
    with RegistryClient(registry_http.url, insecure=True) as registry_client:
        store = RegistryStore(registry_client)
        image = _push_image(registry_client, "hep/juno/offline", naming.arch_tag(cell), cell)
        client, log = _client(prism_server)
        # Prism's example label is named "string"; a real Harbor would create "hepbuild".
        published = publish_all(store, config, {cell.image_key: [(cell, image)]},
                                BuildInputs([image], {}), Provenance("ci", None, WHEN),
                                tmp_path / "records", harbor=HarborSteps(client, label="string"))

    assert published.blocked == []
    calls = [(r.request.method, urlsplit(r.request.url or "").path) for r in log.responses]
    artifact = "/projects/hep/repositories/juno%252Foffline/artifacts/"
    assert calls == [
        ("HEAD", "/projects"),
        ("GET", "/projects/hep/immutabletagrules"),
        ("POST", "/projects/hep/immutabletagrules"),
        ("POST", artifact + str(image.digest) + "/scan"),
        ("GET", "/projects/hep"),
        ("GET", "/labels"),
        ("POST", artifact + published.releases[0].digest + "/labels"),
    ]
    assert all(200 <= r.status_code < 300 for r in log.responses)
    assert log.violations() == []


@pytest.mark.registry
def test_scan_gate_blocks_publish_before_any_tag_moves(
    prism_server: PrismServer, registry_http: LocalRegistry, tmp_path: Path,  # noqa: F811
) -> None:
    config, cell = _harbor_config(registry_http.url, prism_server.url, tmp_path, "gated")
    with RegistryClient(registry_http.url, insecure=True) as registry_client:
        store = RegistryStore(registry_client)
        image = _push_image(registry_client, "hep/juno/gated", naming.arch_tag(cell), cell)
        client, _ = _client(prism_server)
        steps = HarborSteps(client, label="string", max_severity="Medium", scan_timeout=5)
        published = publish_all(store, config, {cell.image_key: [(cell, image)]},
                                BuildInputs([image], {}), Provenance("ci", None, WHEN),
                                tmp_path / "records", harbor=steps)
        tags = registry_client.list_tags("hep/juno/gated")

    assert published.releases == []
    assert published.blocked == [
        "juno/gated-el9-x86_64: vulnerability gate failed: severity High is above Medium "
        "(500 found, 100 fixable; Critical 5, High 5)"]
    assert tags == [naming.arch_tag(cell)]


def _push_image(client: RegistryClient, repo: str, tag: str, cell: Cell) -> BuiltImage:
    layer, _ = client.push_blob(repo, b"layer")
    config = json.dumps({"architecture": cell.arch.oci, "os": "linux"}).encode()
    config_desc, _ = client.push_blob(repo, config)
    manifest = {"schemaVersion": 2, "mediaType": OCI_MANIFEST,
                "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                           "digest": config_desc.digest, "size": len(config)},
                "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar",
                            "digest": layer.digest, "size": 5}]}
    digest = client.put_manifest(repo, tag, json.dumps(manifest).encode(), OCI_MANIFEST)
    return BuiltImage(cell_id=cell.id, local_ref="", pushed_ref=None, digest=digest, size=5,
                      platform=cell.arch.platform, log="", seconds=0.0, test_status="passed",
                      content_key=None, base_digest=None, image_key=cell.image_key)


HARBOR_MATRIX = """\
version: 1
arches: [x86_64]
default_profile: prod
bases:
  el9:
    family: yum
    arches: [x86_64]
    images:
      x86_64: harbor.example/bases/el9:x86_64
profiles:
  prod:
    registry:
      name: harbor
      url: harbor.example
      kind: harbor
      project: hep
      public: true
      api: {api}
"""


def test_publish_project_only_ensures_the_harbor_project(
    prism_server: PrismServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    (tmp_path / "recipes" / "hep" / "demo").mkdir(parents=True)
    (tmp_path / "recipes" / "hep" / "demo" / "recipe.yaml").write_text(
        'name: demo\nversion: "1"\n')
    (tmp_path / "matrix.yaml").write_text(HARBOR_MATRIX.format(api=prism_server.url))
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("HEPBUILD_REGISTRY_USER", ROBOT)
    monkeypatch.setenv("HEPBUILD_REGISTRY_PASSWORD", SECRET)

    code = main(["publish", "--project-only", "--json"])

    captured = capsys.readouterr()
    assert code == 0, captured.err
    # Prism's HEAD /projects answers 200, so the project "exists already"
    assert json.loads(captured.out) == {"created": False, "project": "hep", "public": True}
    assert SECRET not in captured.err + captured.out
