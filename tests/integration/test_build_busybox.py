"""bases -> build -> test -> push -> release (dated and moving tags, records), for real.

The project (tests/data/build/project) uses busybox bases for x86_64 and arm64, so the
arm64 RUN steps and tests really run under qemu, yet everything takes seconds.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import shutil
import subprocess
import sys
import uuid
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from pathlib import Path

import pytest

from hepbuild.registry.server import LocalRegistry
from tests.integration.registry_fixtures import registry_http  # noqa: F401

pytestmark = [pytest.mark.buildah, pytest.mark.qemu, pytest.mark.registry,
              pytest.mark.xdist_group("build-busybox")]

DATA = Path(__file__).resolve().parent.parent / "data" / "build" / "project"
FOREIGN_DEBS = Path("/tmp/bb")  # where the machine set-up leaves busybox-static:arm64


def _hepbuild(project: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "hepbuild", *args], cwd=project,
                          capture_output=True, text=True, timeout=600,
                          env={**os.environ, **env})


def _make_project(root: Path, registry: str, group: str) -> Path:
    project = root / "project"
    text = (DATA / "matrix.yaml.in").read_text()
    project.mkdir()
    (project / "matrix.yaml").write_text(text.replace("@REGISTRY@", registry)
                                         .replace("@GROUP@", group))
    for recipe in (DATA / "recipes").iterdir():
        dest = project / "recipes" / group / recipe.name
        shutil.copytree(recipe, dest)
        spec = dest / "recipe.yaml"
        spec.write_text(spec.read_text().replace("@GROUP@", group))
    return project


@pytest.fixture(scope="module")
def project(registry_http: LocalRegistry,  # noqa: F811
            tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    group = f"t{uuid.uuid4().hex[:8]}"  # unique image names in the shared buildah store
    yield _make_project(tmp_path_factory.mktemp("build"), registry_http.url, group)


@pytest.fixture(scope="module")
def bases(project: Path) -> list[dict]:
    """The first ``hepbuild bases`` run: bootstraps both busybox bases into the registry."""
    return _json(_hepbuild(project, "bases", "--json", *_deb_dirs()))["bases"]


def _deb_dirs() -> list[str]:
    return ["--deb-dir", str(FOREIGN_DEBS)] if FOREIGN_DEBS.is_dir() else []


def _json(proc: subprocess.CompletedProcess[str]) -> dict:
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout)


def _raw(ref: str) -> dict:
    out = subprocess.run(["skopeo", "inspect", "--raw", "--tls-verify=false", f"docker://{ref}"],
                         capture_output=True, text=True, check=True)
    return json.loads(out.stdout)


def test_busybox_bases_are_built_once_then_reused(project: Path, bases: list[dict]) -> None:
    first = bases
    assert [(b["arch"], b["status"], b["method"]) for b in first] == [
        ("x86_64", "built", "busybox"), ("arm64", "built", "busybox")]

    again = _json(_hepbuild(project, "bases", "--json", *_deb_dirs()))["bases"]
    assert [b["status"] for b in again] == ["reused", "reused"]
    assert [b["digest"] for b in again] == [b["digest"] for b in first]

    arm = next(b for b in first if b["arch"] == "arm64")
    config = _raw(arm["ref"])
    assert config["mediaType"].endswith("manifest.v1+json")
    blob = subprocess.run(["skopeo", "inspect", "--config", "--tls-verify=false",
                           f"docker://{arm['ref']}"], capture_output=True, text=True, check=True)
    platform = json.loads(blob.stdout)
    assert (platform["architecture"], platform.get("variant")) == ("arm64", "v8")


def test_build_tests_and_pushes_both_arches_and_the_lists(project: Path, bases: list) -> None:
    group = next((project / "recipes").iterdir()).name
    argv_log = project / "argv.jsonl"
    auth = project / "auth.json"
    # A robot login in the auth file (the plain-HTTP test registry ignores it): the whole
    # build, push and release must never show the secret, nor its base64 form.
    registry = (project / "matrix.yaml").read_text().split("url: ", 1)[1].split()[0]
    secret = "s3cr3t$build-9f2"
    login = base64.b64encode(f"robot$hep+ci:{secret}".encode()).decode()
    auth.write_text(json.dumps({"auths": {registry: {"auth": login}}}))
    proc = _hepbuild(project, "build", "--jobs", "2", "--json", "--authfile", str(auth),
                     "--select", f"{group}/parent", "--select", f"{group}/child",
                     HEPBUILD_ARGV_LOG=str(argv_log))
    report = _json(proc)
    _assert_buildah_calls(argv_log, auth)
    logs = [p.read_text(errors="replace") for p in (project / "build").rglob("*.log")]
    for text in [argv_log.read_text(), proc.stdout, proc.stderr, *logs]:
        assert secret not in text and login not in text

    images = {i["cell_id"]: i for i in report["images"]}
    assert sorted(images) == sorted(f"{group}/{r}-bb-{a}" for r in ("parent", "child")
                                    for a in ("x86_64", "arm64"))
    for cell_id, image in images.items():
        assert (image["status"], image["test_status"]) == ("built", "passed"), cell_id
        assert image["pushed_ref"].startswith("127.0.0.1:")
        assert image["digest"].startswith("sha256:") and image["size"] > 1_000_000
        assert Path(image["log"]).is_file()
        assert image["base_digest"] is None or image["base_digest"].startswith("sha256:")
    assert images[f"{group}/parent-bb-arm64"]["platform"] == "linux/arm64/v8"
    assert images[f"{group}/child-bb-x86_64"]["platform"] == "linux/amd64"
    assert images[f"{group}/parent-bb-x86_64"]["base_digest"].startswith("sha256:")

    # The parent's log shows its RUN step ran as aarch64 (qemu); the child waited for it.
    assert "STEP" in Path(images[f"{group}/parent-bb-arm64"]["log"]).read_text()

    releases = {entry["image_key"]: entry for entry in report["releases"]}
    assert sorted(releases) == [f"{group}/child-bb", f"{group}/parent-bb"]
    assert report["blocked"] == []
    parent = releases[f"{group}/parent-bb"]
    version_tag, latest_tag = parent["moving_tags"]
    assert latest_tag == "bb-latest" and version_tag.endswith("-bb")
    index = _raw(f"{parent['repository']}:{version_tag}")
    platforms = sorted((m["platform"]["architecture"], m["platform"].get("variant"))
                       for m in index["manifests"])
    assert platforms == [("amd64", None), ("arm64", "v8")]
    pushed = {m["digest"] for m in index["manifests"]}
    assert pushed == {images[f"{group}/parent-bb-{a}"]["digest"] for a in ("x86_64", "arm64")}
    # The dated tag holds the very same list, and the moving tags point at it.
    assert _raw(f"{parent['repository']}:{parent['dated_tag']}") == index
    assert _raw(f"{parent['repository']}:{latest_tag}") == index
    # The parent asks for oci and sif outputs: both are in dist/<cell>/, the SIF with its
    # checksum files, and the release grouped the per-arch SIFs under the version tag.
    for arch in ("x86_64", "arm64"):
        cell_dir = project / "dist" / f"{group}/parent-bb-{arch}"
        assert (cell_dir / "parent.oci" / "index.json").is_file()
        sif = cell_dir / "parent.sif"
        assert sif.read_bytes()[32:41] == b"SIF_MAGIC"
        assert (cell_dir / "parent.sif.sha256").read_text() == (
            f"{hashlib.sha256(sif.read_bytes()).hexdigest()}  parent.sif\n")
        assert (cell_dir / "parent.sif.md5").is_file()
    assert parent["sif_repository"].endswith(f"/{group}/parent-sif")
    sif_index = _raw(f"{parent['sif_repository']}:{version_tag}")
    assert sorted(m["platform"]["architecture"] for m in sif_index["manifests"]) == [
        "amd64", "arm64"]
    assert releases[f"{group}/child-bb"]["sif_repository"] is None

    # build/results.json is what `hepbuild publish` reads, and a record was kept per cell.
    results = json.loads((project / "build" / "results.json").read_text())
    assert sorted(i["cell_id"] for i in results["images"]) == sorted(images)
    records = sorted(p.name for p in (project / "build" / "records").glob("*.json"))
    assert records == sorted(c.replace("/", "__") + ".json" for c in images)

    _assert_push_takes_a_cell_id(project, group, registry)

    junit = ET.parse(project / "build" / "reports" / "junit.xml").getroot().find("testsuite")
    assert junit is not None and (junit.get("tests"), junit.get("failures")) == ("4", "0")


def _assert_push_takes_a_cell_id(project: Path, group: str, registry: str) -> None:
    """`hepbuild push CELL` sends that cell's built image (docker://) or its SIF (oras://)."""
    cell = f"{group}/parent-bb-arm64"
    oci = _json(_hepbuild(project, "push", "--insecure", "--json", cell,
                          f"docker://{registry}/{group}/copied:1"))
    config = _raw(f"{registry}/{group}/copied:1")
    assert config["mediaType"].endswith("manifest.v1+json") and oci["result"]["digest"]
    sif = _json(_hepbuild(project, "push", "--insecure", "--json", cell,
                          f"oras://{registry}/{group}/copied-sif:1"))
    assert sif["result"]["arch"] == "arm64"
    assert sif["result"]["size"] >= (project / "dist" / cell / "parent.sif").stat().st_size


def _assert_buildah_calls(argv_log: Path, auth: Path) -> None:
    """Credentials only as --authfile; arm64 builds say --arch arm64 --variant v8."""
    calls = [json.loads(line) for line in argv_log.read_text().splitlines()]
    buildah = [c for c in calls if Path(c[0]).name == "buildah"]
    assert not any(a.startswith("--creds") for c in calls for a in c)
    pushes = [c for c in buildah if "push" in c]
    assert len(pushes) == 4  # the four per-arch images; lists go through the registry client
    assert all(c[c.index("--authfile") + 1] == str(auth) and "--digestfile" in c for c in pushes)
    builds = [c for c in buildah if "build" in c]
    arm = [c for c in builds if c[c.index("--arch") + 1] == "arm64"]
    assert len(arm) == 2 and all(c[c.index("--variant") + 1] == "v8" for c in arm)
    assert all(c[c.index("--isolation") + 1] in ("chroot", "oci") for c in builds)


def test_a_failing_step_names_the_cell_and_the_step(project: Path, bases: list) -> None:
    group = next((project / "recipes").iterdir()).name
    proc = _hepbuild(project, "build", "--no-push", "--select", f"{group}/broken-bb-x86_64")

    assert proc.returncode == 7, proc.stderr[-2000:]
    assert "Traceback" not in proc.stderr
    assert f"cell {group}/broken-bb-x86_64 failed at step: STEP" in proc.stderr
    assert "RUN set -e; echo about to fail && exit 7 (exit status 7)" in proc.stderr
    assert "about to fail" in proc.stderr  # the tail of the log is shown
    log = project / "build" / "logs" / f"{group}__broken-bb-x86_64.log"
    assert log.is_file() and "exit status 7" in log.read_text()
    assert "failed" in proc.stdout  # the summary table still printed, with the status
