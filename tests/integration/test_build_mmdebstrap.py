"""The real bases path: mmdebstrap debian12 minbase (amd64 only, ~25 s), imported and pushed."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from hepbuild.registry.server import LocalRegistry
from tests.integration.registry_fixtures import registry_http  # noqa: F401

pytestmark = [pytest.mark.slow, pytest.mark.buildah, pytest.mark.registry,
              pytest.mark.xdist_group("build-mmdebstrap")]

DATA = Path(__file__).resolve().parent.parent / "data" / "build" / "mmdebstrap"


@pytest.mark.timeout(600)
def test_mmdebstrap_debian12_base_is_bootstrapped_and_pushed(
    registry_http: LocalRegistry, tmp_path: Path  # noqa: F811
) -> None:
    group = f"t{uuid.uuid4().hex[:8]}"
    text = (DATA / "matrix.yaml.in").read_text()
    (tmp_path / "matrix.yaml").write_text(
        text.replace("@REGISTRY@", registry_http.url).replace("@GROUP@", group))
    (tmp_path / "recipes").mkdir()

    proc = subprocess.run([sys.executable, "-m", "hepbuild", "bases", "--json"], cwd=tmp_path,
                          capture_output=True, text=True, timeout=600, env=os.environ.copy())
    assert proc.returncode == 0, proc.stderr[-3000:]
    [base] = json.loads(proc.stdout)["bases"]
    assert (base["base"], base["arch"], base["status"], base["method"]) == (
        "debian12", "x86_64", "built", "mmdebstrap")

    ref = f"docker://{base['ref']}"
    config = json.loads(subprocess.run(
        ["skopeo", "inspect", "--config", "--tls-verify=false", ref],
        capture_output=True, text=True, check=True).stdout)
    assert (config["os"], config["architecture"]) == ("linux", "amd64")
    assert config["config"]["Labels"]["org.hepbuild.base.method"] == "mmdebstrap"

    # The image really is Debian 12: read /etc/debian_version out of its only layer.
    layout = tmp_path / "layout"
    subprocess.run(["skopeo", "copy", "--quiet", "--src-tls-verify=false", ref, f"oci:{layout}:x"],
                   check=True)
    manifest = json.loads(subprocess.run(
        ["skopeo", "inspect", "--raw", f"oci:{layout}:x"], capture_output=True, text=True,
        check=True).stdout)
    layer = layout / "blobs" / "sha256" / manifest["layers"][0]["digest"].split(":")[1]
    version = subprocess.run(["tar", "-xzOf", str(layer), "--wildcards", "*etc/debian_version"],
                             capture_output=True, text=True, check=True).stdout
    assert version.startswith("12.")
