"""Credentials, auth files and WWW-Authenticate parsing (no registry needed)."""

from __future__ import annotations

import base64
import json
import stat
from pathlib import Path

import pytest

from hepbuild.errors import AuthError
from hepbuild.registry.auth import (
    Credentials,
    authfile_for,
    load_credentials,
    parse_challenge,
)
from hepbuild.registry.tokenserver import parse_scope
from hepbuild.tools import redact

ROBOT = "robot$library+ci"
SECRET = "s3cr3t$1"


def _auth_file(path: Path, host: str, user: str, password: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    token = base64.b64encode(f"{user}:{password}".encode()).decode()
    path.write_text(json.dumps({"auths": {host: {"auth": token}}}))
    return path


def test_g4_basic_credential_is_base64_of_exactly_user_colon_secret() -> None:
    credentials = Credentials(ROBOT, SECRET)
    assert credentials.basic_token == "cm9ib3QkbGlicmFyeStjaTpzM2NyM3QkMQ=="
    assert base64.b64decode(credentials.basic_token) == b"robot$library+ci:s3cr3t$1"
    assert credentials.basic_header == "Basic cm9ib3QkbGlicmFyeStjaTpzM2NyM3QkMQ=="


def test_secrets_are_registered_and_kept_out_of_repr() -> None:
    credentials = Credentials(ROBOT, "another-s3cret")
    assert "another-s3cret" not in repr(credentials)
    assert redact("pw=another-s3cret") == "pw=***"
    assert redact(credentials.basic_header) == "Basic ***"


def test_environment_wins_and_password_file_is_read(tmp_path: Path) -> None:
    secret = tmp_path / "secret"
    secret.write_text(SECRET + "\n")
    env = {
        "HOME": str(tmp_path),
        "HEPBUILD_REGISTRY_USER": ROBOT,
        "HEPBUILD_REGISTRY_PASSWORD_FILE": str(secret),
    }
    _auth_file(tmp_path / ".docker" / "config.json", "reg.example:5000", "docker-user", "x1y2z3")
    found = load_credentials("reg.example:5000", env)
    assert (found.username, found.password, found.source) == (ROBOT, SECRET, "environment")


@pytest.mark.parametrize(
    "where", ["REGISTRY_AUTH_FILE", "XDG_RUNTIME_DIR", "XDG_CONFIG_HOME", "DOCKER_CONFIG", "HOME"]
)
def test_each_auth_file_location_is_read(tmp_path: Path, where: str) -> None:
    paths = {
        "REGISTRY_AUTH_FILE": tmp_path / "explicit.json",
        "XDG_RUNTIME_DIR": tmp_path / "run" / "containers" / "auth.json",
        "XDG_CONFIG_HOME": tmp_path / "cfg" / "containers" / "auth.json",
        "DOCKER_CONFIG": tmp_path / "dockercfg" / "config.json",
        "HOME": tmp_path / "home" / ".docker" / "config.json",
    }
    values = {
        "REGISTRY_AUTH_FILE": str(paths["REGISTRY_AUTH_FILE"]),
        "XDG_RUNTIME_DIR": str(tmp_path / "run"),
        "XDG_CONFIG_HOME": str(tmp_path / "cfg"),
        "DOCKER_CONFIG": str(tmp_path / "dockercfg"),
        "HOME": str(tmp_path / "home"),
    }
    env = {"HOME": str(tmp_path / "home"), where: values[where]}
    _auth_file(paths[where], "https://Reg.Example:5000/v1/", ROBOT, SECRET)
    found = load_credentials("reg.example:5000", env)
    assert found is not None and (found.username, found.password) == (ROBOT, SECRET)
    assert found.source == str(paths[where])
    assert load_credentials("other.example", env) is None


def test_podman_file_is_preferred_to_docker_config(tmp_path: Path) -> None:
    env = {"HOME": str(tmp_path), "XDG_RUNTIME_DIR": str(tmp_path / "run")}
    _auth_file(tmp_path / "run" / "containers" / "auth.json", "h:1", "podman-user", "pw-podman")
    _auth_file(tmp_path / ".docker" / "config.json", "h:1", "docker-user", "pw-docker")
    assert load_credentials("h:1", env).username == "podman-user"


def test_broken_auth_file_names_the_file(tmp_path: Path) -> None:
    broken = tmp_path / "auth.json"
    broken.write_text("{not json")
    with pytest.raises(AuthError, match=str(broken)):
        load_credentials("h:1", {"HOME": str(tmp_path), "REGISTRY_AUTH_FILE": str(broken)})


def test_user_without_password_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(AuthError, match="no password"):
        load_credentials("h:1", {"HOME": str(tmp_path), "HEPBUILD_REGISTRY_USER": ROBOT})


def test_authfile_for_is_private_and_removed() -> None:
    with authfile_for("127.0.0.1:5000", Credentials(ROBOT, SECRET)) as path:
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
        assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
        document = json.loads(path.read_text())
        token = document["auths"]["127.0.0.1:5000"]["auth"]
        assert base64.b64decode(token).decode() == f"{ROBOT}:{SECRET}"
    assert not path.exists() and not path.parent.exists()


def test_challenge_with_commas_inside_the_scope() -> None:
    challenge = parse_challenge(
        'Bearer realm="https://harbor.example/service/token",service="harbor-registry",'
        'scope="repository:p/r:pull,push repository:p/base:pull"'
    )
    assert challenge is not None and challenge.scheme == "bearer"
    assert challenge.params["realm"] == "https://harbor.example/service/token"
    assert challenge.params["service"] == "harbor-registry"
    assert challenge.scopes == ["repository:p/r:pull,push", "repository:p/base:pull"]


def test_basic_challenge() -> None:
    challenge = parse_challenge('Basic realm="harbor"')
    assert challenge is not None and (challenge.scheme, challenge.params) == (
        "basic",
        {"realm": "harbor"},
    )


def test_token_server_reads_scopes_like_harbor() -> None:
    assert parse_scope("repository:p/r:pull,push") == {
        "type": "repository",
        "name": "p/r",
        "actions": ["pull", "push"],
    }
    assert parse_scope("repository:host:5000/r:pull")["name"] == "host:5000/r"
    assert parse_scope("nonsense") is None
