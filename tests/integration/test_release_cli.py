"""hepbuild publish / history / rollback end to end: a project on disk, a real registry."""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path

import pytest
from registry_fixtures import ROBOT_SECRET, ROBOT_USER, registry_http, registry_tls  # noqa: F401

from hepbuild.cli import main
from hepbuild.registry.client import RegistryClient
from hepbuild.registry.media import OCI_MANIFEST
from hepbuild.registry.server import LocalRegistry

pytestmark = pytest.mark.registry

MATRIX = """\
version: 1
arches: [x86_64, arm64]
default_profile: local
bases:
  el9:
    family: yum
    arches: [x86_64, arm64]
    images:
      x86_64: {url}/bases/el9:x86_64
      arm64: {url}/bases/el9:arm64
profiles:
  local:
    registry:
      name: local
      url: {url}
      insecure: true
"""
RECIPE = 'name: {name}\nversion: "{version}"\noutputs: [oci]\n'


def _project(root: Path, url: str, name: str, version: str) -> Path:
    (root / "recipes" / "hep" / name).mkdir(parents=True)
    (root / "matrix.yaml").write_text(MATRIX.format(url=url))
    (root / "recipes" / "hep" / name / "recipe.yaml").write_text(
        RECIPE.format(name=name, version=version))
    return root


def _push(client: RegistryClient, repo: str, tag: str, content: bytes, arch: str) -> str:
    layer, _ = client.push_blob(repo, content)
    config = json.dumps({"architecture": arch, "os": "linux"}).encode()
    config_desc, _ = client.push_blob(repo, config)
    manifest = {"schemaVersion": 2, "mediaType": OCI_MANIFEST,
                "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                           "digest": config_desc.digest, "size": len(config)},
                "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar",
                            "digest": layer.digest, "size": len(content)}]}
    return client.put_manifest(repo, tag, json.dumps(manifest).encode(), OCI_MANIFEST)


def _results(root: Path, digests: Mapping[str, str | None]) -> None:
    images = [{"cell_id": cell, "status": "built" if d else "failed", "digest": d,
               "platform": "linux/amd64" if "x86_64" in cell else "linux/arm64/v8",
               "error": None if d else "test step failed", "image_key": cell.rsplit("-", 1)[0]}
              for cell, d in digests.items()]
    (root / "build").mkdir(exist_ok=True)
    (root / "build" / "results.json").write_text(json.dumps({"images": images, "outputs": {}}))


def _run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_publish_history_rollback_commands(
    registry_http: LocalRegistry, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,  # noqa: F811
    capsys: pytest.CaptureFixture[str],
) -> None:
    root = _project(tmp_path, registry_http.url, "clidemo", "2.0")
    monkeypatch.chdir(root)
    monkeypatch.setenv("GITLAB_USER_LOGIN", "carol")
    client = RegistryClient(registry_http.url, insecure=True)
    cells = ("hep/clidemo-el9-x86_64", "hep/clidemo-el9-arm64")

    published = []
    for round_, when in (("a", "2026-12-01T08:00:00Z"), ("b", "2026-12-02T09:00:00+00:00")):
        digests = {c: _push(client, "hep/clidemo", "2.0-" + c.split("clidemo-")[1],
                            f"{round_}{c}".encode(), "amd64") for c in cells}
        _results(root, digests)
        code, out, err = _run(capsys, "publish", "--json", "--time", when)
        assert code == 0, err
        published.append(json.loads(out)["releases"][0])
    assert [p["dated_tag"] for p in published] == [
        "2.0-el9-20261201T080000Z", "2.0-el9-20261202T090000Z"]
    assert (root / "build" / "records" / "hep__clidemo-el9-arm64.json").is_file()

    code, out, _ = _run(capsys, "history", "hep/clidemo-el9", "--json")
    versions = json.loads(out)["versions"]
    assert code == 0
    assert [v["tag"] for v in versions] == [published[1]["dated_tag"], published[0]["dated_tag"]]
    assert versions[0]["moving"] == ["2.0-el9", "el9-latest"]
    assert [r["builder"] for r in versions[0]["records"]] == ["carol", "carol"]

    code, out, _ = _run(capsys, "history", "hep/clidemo-el9")
    lines = out.splitlines()
    assert lines[0].split() == ["TAG", "VERSION", "BUILT", "DIGEST", "MOVING", "PLATFORMS",
                                "RECORDS", "ROLLBACKS"]
    assert lines[1].startswith("2.0-el9-20261202T090000Z  2.0      2026-12-02T09:00:00Z")
    assert "2.0-el9, el9-latest" in lines[1] and "2 (no git commit)" in lines[1]

    code, out, err = _run(capsys, "rollback", "hep/clidemo-el9", "--to",
                          published[0]["dated_tag"], "--reason", "broken ROOT")
    assert code == 0, err
    assert "rolled back hep/clidemo-el9" in err and "by carol" in err
    assert client.manifest_exists("hep/clidemo", "el9-latest") == published[0]["digest"]
    code, out, _ = _run(capsys, "history", "hep/clidemo-el9", "--json")
    after = json.loads(out)["versions"]
    assert [(r["user"], r["reason"]) for r in after[1]["rollbacks"]] == [("carol", "broken ROOT")]
    assert (after[0]["rollbacks"], after[1]["moving"]) == ([], ["2.0-el9", "el9-latest"])

    log = root / "build" / "records" / "rollbacks.jsonl"
    logged = log.read_text()
    code, out, err = _run(capsys, "rollback", "hep/clidemo-el9", "--to",
                          published[0]["dated_tag"], "--reason", "again")
    assert code == 0, err
    assert f"hep/clidemo-el9 is already at {published[0]['dated_tag']}" in err
    assert "no record was written" in err
    assert log.read_text() == logged
    code, out, _ = _run(capsys, "history", "hep/clidemo-el9", "--json")
    assert len(json.loads(out)["versions"][1]["rollbacks"]) == 1

    code, out, err = _run(capsys, "rollback", "hep/clidemo-el9", "--to",
                          published[1]["dated_tag"], "--reason", "  ")
    assert code == 2
    assert "needs a reason; nothing was moved" in err and "Traceback" not in err
    assert client.manifest_exists("hep/clidemo", "el9-latest") == published[0]["digest"]

    with pytest.raises(SystemExit) as usage:
        main(["rollback", "hep/clidemo-el9", "--to", published[1]["dated_tag"]])
    assert usage.value.code == 2
    assert "the following arguments are required: --reason" in capsys.readouterr().err

    code, out, err = _run(capsys, "rollback", "hep/clidemo-el9", "--to", "9.9-el9",
                          "--reason", "x")
    assert code == 2
    assert "available versions: " + ", ".join(v["tag"] for v in versions) in err
    assert client.manifest_exists("hep/clidemo", "el9-latest") == published[0]["digest"]


def test_publish_with_a_failed_arch_exits_nonzero_and_moves_nothing(
    registry_http: LocalRegistry, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,  # noqa: F811
    capsys: pytest.CaptureFixture[str],
) -> None:
    root = _project(tmp_path, registry_http.url, "clifail", "1.0")
    monkeypatch.chdir(root)
    client = RegistryClient(registry_http.url, insecure=True)
    good = _push(client, "hep/clifail", "1.0-el9-x86_64", b"ok", "amd64")
    _results(root, {"hep/clifail-el9-x86_64": good, "hep/clifail-el9-arm64": None})

    code, _, err = _run(capsys, "publish")

    assert code == 7
    assert "hep/clifail-el9-arm64 (arm64): failed - test step failed" in err
    assert client.list_tags("hep/clifail") == ["1.0-el9-x86_64"]

    _results(root, {"hep/clifail-el9-x86_64": good})  # arm64 not in the results at all
    code, _, err = _run(capsys, "publish")
    assert code == 7
    assert "hep/clifail-el9-arm64 (arm64): failed - 1.0-el9-arm64 is not in the registry" in err
    assert client.list_tags("hep/clifail") == ["1.0-el9-x86_64"]


def test_publish_and_rollback_with_a_robot_over_tls(
    registry_tls: LocalRegistry, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,  # noqa: F811
    capsys: pytest.CaptureFixture[str],
) -> None:
    root = _project(tmp_path, registry_tls.url, "tlsdemo", "1.0")
    matrix = (root / "matrix.yaml").read_text().replace(
        "      insecure: true\n", f"      ca_file: {registry_tls.ca_file}\n")
    (root / "matrix.yaml").write_text(matrix)
    monkeypatch.chdir(root)
    monkeypatch.setenv("HEPBUILD_REGISTRY_USER", ROBOT_USER)
    monkeypatch.setenv("HEPBUILD_REGISTRY_PASSWORD", ROBOT_SECRET)
    from hepbuild.registry.auth import Credentials

    client = RegistryClient(registry_tls.url, ca_file=str(registry_tls.ca_file),
                            credentials=Credentials(ROBOT_USER, ROBOT_SECRET))
    _push(client, "hep/tlsdemo", "1.0-el9-x86_64", b"tls", "amd64")

    code, out, err = _run(capsys, "publish", "hep/tlsdemo-el9-x86_64")
    assert code == 7  # the matrix also has arm64, and no arm64 image is in the registry
    assert "hep/tlsdemo-el9-arm64 (arm64): failed - 1.0-el9-arm64 is not in the registry" in err

    _push(client, "hep/tlsdemo", "1.0-el9-arm64", b"tls-arm", "arm64")
    code, out, err = _run(capsys, "publish", "hep/tlsdemo-el9-x86_64", "--json",
                          "--time", "2026-12-01T00:00:00Z")
    assert code == 0, err
    release = json.loads(out)["releases"][0]
    assert release["platforms"] == ["linux/amd64", "linux/arm64/v8"]
    dated = release["dated_tag"]
    code, out, err = _run(capsys, "rollback", "hep/tlsdemo-el9", "--to", dated, "--json",
                          "--reason", "no-op")
    assert code == 0, err
    assert (json.loads(out)["already_there"], json.loads(out)["moves"]) == (True, [])

    _push(client, "hep/tlsdemo", "1.0-el9-x86_64", b"tls2", "amd64")
    _push(client, "hep/tlsdemo", "1.0-el9-arm64", b"tls-arm2", "arm64")
    code, out, err = _run(capsys, "publish", "hep/tlsdemo-el9-x86_64", "--json",
                          "--time", "2026-12-02T00:00:00Z")
    assert code == 0, err
    code, out, err = _run(capsys, "rollback", "hep/tlsdemo-el9", "--to", dated, "--json",
                          "--reason", "back to the first")
    assert code == 0, err
    assert {m["tag"] for m in json.loads(out)["moves"]} == {"1.0-el9", "el9-latest"}
    assert json.loads(out)["record_digest"].startswith("sha256:")
    assert ROBOT_SECRET not in out + err
