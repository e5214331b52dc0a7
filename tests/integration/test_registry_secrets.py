"""G4 and secret hygiene: a robot account with '$' logs in and pushes through the CLI, and the
secret shows up in no argv of any spawned tool, no output and no log."""

from __future__ import annotations

import base64
import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from registry_fixtures import ROBOT_SECRET, ROBOT_USER, USERS, make_sif

from hepbuild import tools
from hepbuild.registry.auth import Credentials, authfile_for
from hepbuild.registry.server import LocalRegistry

pytestmark = [pytest.mark.registry, pytest.mark.xdist_group("registry")]
FORBIDDEN = [ROBOT_SECRET, base64.b64encode(f"{ROBOT_USER}:{ROBOT_SECRET}".encode()).decode()]


@pytest.fixture(params=["tls-htpasswd", "token"])
def registry(
    request: pytest.FixtureRequest,
    tmp_path_factory: pytest.TempPathFactory,
    monkeypatch: pytest.MonkeyPatch,
) -> Iterator[LocalRegistry]:
    """A private registry started with the argv log on, so htpasswd and openssl are scanned too."""
    argv_log = tmp_path_factory.mktemp("argv") / "argv.log"
    monkeypatch.setenv("HEPBUILD_ARGV_LOG", str(argv_log))
    with LocalRegistry(tmp_path_factory.mktemp("reg"), mode=request.param, users=USERS) as reg:
        yield reg


def _hepbuild(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "hepbuild", *args],
        capture_output=True,
        text=True,
        env={**os.environ, **env},
        timeout=120,
    )


def test_robot_push_pull_and_skopeo_leak_no_secret(
    registry: LocalRegistry, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    secret_file = tmp_path / "robot-secret"
    secret_file.write_text(ROBOT_SECRET + "\n")
    argv_log = Path(os.environ["HEPBUILD_ARGV_LOG"])  # already holds the registry's set-up
    env = {
        "HEPBUILD_REGISTRY_USER": ROBOT_USER,
        "HEPBUILD_REGISTRY_PASSWORD_FILE": str(secret_file),
        "HEPBUILD_ARGV_LOG": str(argv_log),
    }
    sif_path = make_sif(tmp_path / "robot.sif", "arm64")
    ref = f"oras://{registry.url}/library/robot-{registry.mode}:1"
    tls = ["--ca-file", str(registry.ca_file)]

    pushed = _hepbuild(["push", *tls, "--json", str(sif_path), ref], env)
    assert pushed.returncode == 0, pushed.stderr
    digest = json.loads(pushed.stdout)["result"]["digest"]
    pulled = _hepbuild(["pull", *tls, "--arch", "arm64", ref, str(tmp_path / "back.sif")], env)
    assert pulled.returncode == 0, pulled.stderr
    assert (tmp_path / "back.sif").read_bytes() == sif_path.read_bytes()

    skopeo_out = _skopeo_inspect(
        registry, ref.replace("oras://", "docker://"), tmp_path, monkeypatch, argv_log
    )
    assert json.loads(skopeo_out)["layers"][0]["digest"].startswith("sha256:")

    texts = {
        "argv log": argv_log.read_text(),
        "push output": pushed.stdout + pushed.stderr,
        "pull output": pulled.stdout + pulled.stderr,
        "registry log": registry.log_path.read_text(),
    }
    tools_seen = {Path(json.loads(line)[0]).name for line in texts["argv log"].splitlines()}
    assert {"openssl", "skopeo"} <= tools_seen  # the scan covered real spawns
    if registry.mode == "tls-htpasswd":
        assert "htpasswd" in tools_seen
    for name, text in texts.items():
        for secret in FORBIDDEN:
            assert secret not in text, f"secret found in {name}"
    assert digest.startswith("sha256:")
    if registry.mode == "tls-htpasswd":
        # G4: htpasswd accepted the robot's Basic credential, '$' and '+' included.
        assert f'auth.user.name="{ROBOT_USER}"' in texts["registry log"]


def _skopeo_inspect(
    registry: LocalRegistry,
    ref: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    argv_log: Path,
) -> str:
    monkeypatch.setenv("HEPBUILD_ARGV_LOG", str(argv_log))
    certs = tmp_path / "certs"
    certs.mkdir()
    shutil.copy(str(registry.ca_file), certs / "ca.crt")
    with authfile_for(registry.url, Credentials(ROBOT_USER, ROBOT_SECRET)) as authfile:
        result = tools.run(
            [
                tools.find_tool("skopeo").path,
                "inspect",
                "--raw",
                "--authfile",
                authfile,
                "--cert-dir",
                certs,
                ref,
            ]
        )
    return result.text


def test_wrong_secret_is_refused_without_echoing_it(
    registry: LocalRegistry, tmp_path: Path
) -> None:
    wrong = "wr0ng$ecret-value"
    sif_path = make_sif(tmp_path / "x.sif", "x86_64")
    env = {"HEPBUILD_REGISTRY_USER": ROBOT_USER, "HEPBUILD_REGISTRY_PASSWORD": wrong}
    result = _hepbuild(
        [
            "push",
            "--ca-file",
            str(registry.ca_file),
            str(sif_path),
            f"oras://{registry.url}/library/denied:1",
        ],
        env,
    )
    assert result.returncode == 10  # AuthError
    assert f"refused the credentials of '{ROBOT_USER}'" in result.stderr
    assert wrong not in result.stdout + result.stderr
    assert "Traceback" not in result.stderr
