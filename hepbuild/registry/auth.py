"""Registry credentials: the one place secrets enter hepbuild.

Credentials come from (first match wins) HEPBUILD_REGISTRY_USER with HEPBUILD_REGISTRY_PASSWORD
or HEPBUILD_REGISTRY_PASSWORD_FILE, then REGISTRY_AUTH_FILE, podman's
$XDG_RUNTIME_DIR/containers/auth.json, ~/.config/containers/auth.json, then docker's
$DOCKER_CONFIG/config.json or ~/.docker/config.json. Every secret is registered for redaction;
external tools get a private 0600 auth file, never ``--creds``.
"""

from __future__ import annotations

import base64
import binascii
import json
import os
import re
import shutil
import tempfile
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from hepbuild import output
from hepbuild.errors import AuthError
from hepbuild.tools import register_secret


@dataclass(frozen=True)
class Credentials:
    username: str
    password: str = field(repr=False)
    source: str = "given"

    def __post_init__(self) -> None:
        register_secret(self.password)
        register_secret(self.basic_token)

    @property
    def basic_token(self) -> str:
        """base64 of exactly ``user:password`` (a robot's ``$`` and ``+`` stay as they are)."""
        return base64.b64encode(f"{self.username}:{self.password}".encode()).decode()

    @property
    def basic_header(self) -> str:
        return f"Basic {self.basic_token}"


def normalize_host(host: str) -> str:
    """``https://Host:5000/v1/`` -> ``host:5000`` (auth file keys come in many spellings)."""
    text = re.sub(r"^[a-z]+://", "", host.strip().lower())
    return text.split("/", 1)[0]


def auth_file_candidates(env: Mapping[str, str]) -> list[Path]:
    home = Path(env.get("HOME", str(Path.home())))
    paths: list[Path] = []
    if env.get("REGISTRY_AUTH_FILE"):
        paths.append(Path(env["REGISTRY_AUTH_FILE"]))
    if env.get("XDG_RUNTIME_DIR"):
        paths.append(Path(env["XDG_RUNTIME_DIR"]) / "containers" / "auth.json")
    config_home = Path(env.get("XDG_CONFIG_HOME", str(home / ".config")))
    paths.append(config_home / "containers" / "auth.json")
    docker_dir = Path(env["DOCKER_CONFIG"]) if env.get("DOCKER_CONFIG") else home / ".docker"
    paths.append(docker_dir / "config.json")
    return paths


def load_credentials(host: str, env: Mapping[str, str] | None = None) -> Credentials | None:
    """The credentials for ``host``, or None to try anonymously."""
    env = os.environ if env is None else env
    from_env = _credentials_from_env(env)
    if from_env is not None:
        return from_env
    _warn_missing_auth_file(env)
    for path in auth_file_candidates(env):
        if path.is_file():
            found = _credentials_from_auth_file(path, normalize_host(host))
            if found is not None:
                return found
    return None


_warned_auth_files: set[str] = set()


def _warn_missing_auth_file(env: Mapping[str, str]) -> None:
    """A REGISTRY_AUTH_FILE that is not there is a mistake worth saying, once per file."""
    named = env.get("REGISTRY_AUTH_FILE")
    if not named or Path(named).is_file() or named in _warned_auth_files:
        return
    _warned_auth_files.add(named)
    output.warn(
        f"REGISTRY_AUTH_FILE={named} is not a file; trying the other logins "
        "(fix the path or unset it)"
    )


def _credentials_from_env(env: Mapping[str, str]) -> Credentials | None:
    user = env.get("HEPBUILD_REGISTRY_USER")
    password = env.get("HEPBUILD_REGISTRY_PASSWORD")
    password_file = env.get("HEPBUILD_REGISTRY_PASSWORD_FILE")
    if not user:
        if password or password_file:
            raise AuthError(
                "a registry password is set but HEPBUILD_REGISTRY_USER is not",
                "set HEPBUILD_REGISTRY_USER to the user or robot account name",
            )
        return None
    if password_file and not password:
        try:
            password = Path(password_file).read_text().rstrip("\r\n")
        except OSError as exc:
            raise AuthError(
                f"cannot read HEPBUILD_REGISTRY_PASSWORD_FILE {password_file}: {exc.strerror}"
            ) from None
    if not password:
        raise AuthError(
            "HEPBUILD_REGISTRY_USER is set but no password is",
            "set HEPBUILD_REGISTRY_PASSWORD or HEPBUILD_REGISTRY_PASSWORD_FILE",
        )
    return Credentials(user, password, "environment")


def _credentials_from_auth_file(path: Path, host: str) -> Credentials | None:
    try:
        document = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise AuthError(
            f"cannot read the auth file {path}: {exc}",
            'fix or remove it (it should hold {"auths": {...}})',
        ) from None
    auths = document.get("auths") if isinstance(document, dict) else None
    if not isinstance(auths, dict):
        return None
    for key, entry in auths.items():
        if normalize_host(key) == host and isinstance(entry, dict) and entry.get("auth"):
            return _decode_auth_entry(path, key, str(entry["auth"]))
    return None


def _decode_auth_entry(path: Path, key: str, token: str) -> Credentials:
    register_secret(token)
    try:
        raw = base64.b64decode(token, validate=True).decode()
    except (binascii.Error, UnicodeDecodeError):
        raise AuthError(
            f"{path}: the auth entry for {key} is not base64 of user:password",
            "log in again (podman login / docker login) to rewrite it",
        ) from None
    user, sep, password = raw.partition(":")
    if not sep or not user:
        raise AuthError(f"{path}: the auth entry for {key} has no user:password pair")
    return Credentials(user, password, str(path))


def auth_file_document(host: str, credentials: Credentials) -> dict[str, object]:
    return {"auths": {normalize_host(host): {"auth": credentials.basic_token}}}


@contextmanager
def authfile_for(host: str, credentials: Credentials | None) -> Iterator[Path]:
    """A private auth.json for buildah/skopeo (``--authfile``), removed afterwards."""
    folder = Path(tempfile.mkdtemp(prefix="hepbuild-auth-"))  # mkdtemp makes it 0700
    path = folder / "auth.json"
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        document = auth_file_document(host, credentials) if credentials else {"auths": {}}
        with os.fdopen(fd, "w") as fh:
            json.dump(document, fh)
        yield path
    finally:
        shutil.rmtree(folder, ignore_errors=True)


# -- WWW-Authenticate challenges ---------------------------------------------------------------

_PARAM = re.compile(r'([A-Za-z_]+)\s*=\s*(?:"((?:[^"\\]|\\.)*)"|([^,\s]*))')


@dataclass(frozen=True)
class Challenge:
    scheme: str  # "bearer" or "basic"
    params: dict[str, str]

    @property
    def scopes(self) -> list[str]:
        return [s for s in self.params.get("scope", "").split(" ") if s]


def parse_challenge(header: str) -> Challenge | None:
    """Parse ``Bearer realm="…",service="…",scope="repository:p/r:pull,push"``.

    Commas inside quoted values (scopes) belong to the value, not the parameter list.
    """
    scheme, _, rest = header.strip().partition(" ")
    if not scheme:
        return None
    params = {
        m.group(1).lower(): (m.group(2) if m.group(2) is not None else m.group(3))
        for m in _PARAM.finditer(rest)
    }
    return Challenge(scheme.lower(), params)
