"""Pytest fixtures for throwaway registries, for any engineer's integration tests.

Import the ones you need in your test module (or conftest)::

    from registry_fixtures import registry_http  # noqa: F401

Each fixture is session-scoped, so one registry per set-up runs per xdist worker. Tests using
them must carry ``@pytest.mark.registry``. Use a repository name unique to your test, since
the registry is shared within the worker.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import os
import tarfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from hepbuild.image import sif
from hepbuild.platforms import get_arch
from hepbuild.registry import media
from hepbuild.registry.auth import Credentials
from hepbuild.registry.client import RegistryClient
from hepbuild.registry.server import LocalRegistry

# Harbor-style robot account (case G4): both parts contain '$'.
ROBOT_USER = "robot$library+ci"
ROBOT_SECRET = "s3cr3t$1"
USERS = {ROBOT_USER: ROBOT_SECRET, "alice": "wonder-land-pw"}


def _serve(factory: pytest.TempPathFactory, mode: str) -> Iterator[LocalRegistry]:
    registry = LocalRegistry(
        factory.mktemp(f"registry-{mode}"),
        mode=mode,  # type: ignore[arg-type]
        users=None if mode == "http" else USERS,
    )
    with registry:
        yield registry


@pytest.fixture(scope="session")
def registry_http(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalRegistry]:
    """Plain HTTP, no auth: use ``RegistryClient(reg.url, insecure=True)``."""
    yield from _serve(tmp_path_factory, "http")


@pytest.fixture(scope="session")
def registry_tls(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalRegistry]:
    """HTTPS (CA at ``reg.ca_file``) with htpasswd Basic auth for USERS."""
    yield from _serve(tmp_path_factory, "tls-htpasswd")


@pytest.fixture(scope="session")
def registry_token(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalRegistry]:
    """HTTPS with Harbor-like bearer tokens (realm /service/token, service harbor-registry)."""
    yield from _serve(tmp_path_factory, "token")


def client_for_registry(
    registry: LocalRegistry, user: str = ROBOT_USER, **kwargs: object
) -> RegistryClient:
    """A client with the right TLS settings and (for the auth set-ups) the robot's login."""
    if registry.mode == "http":
        return RegistryClient(registry.url, insecure=True, **kwargs)  # type: ignore[arg-type]
    credentials = Credentials(user, USERS[user])
    return RegistryClient(
        registry.url, ca_file=str(registry.ca_file), credentials=credentials, **kwargs
    )  # type: ignore[arg-type]


# -- small images built in the test, no tools needed -----------------------------------------


def make_sif(path: Path, arch: str, payload_size: int = 64 * 1024) -> Path:
    """A SIF whose primary partition is ``payload_size`` random bytes, marked as ``arch``."""
    payload = path.with_suffix(".payload")
    with open(payload, "wb") as fh:
        for offset in range(0, payload_size, 1 << 20):
            fh.write(os.urandom(min(1 << 20, payload_size - offset)))
    sif.SifWriter().write(path, [sif.primary_squashfs(payload, get_arch(arch).sif)])
    payload.unlink()
    return path


def _tar_gz(files: dict[str, bytes]) -> bytes:
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for name, data in sorted(files.items()):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            info.mtime = 0
            tar.addfile(info, io.BytesIO(data))
    return gzip.compress(raw.getvalue(), mtime=0)


def _put_blob(layout: Path, data: bytes) -> dict[str, object]:
    digest = hashlib.sha256(data).hexdigest()
    folder = layout / "blobs" / "sha256"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / digest).write_bytes(data)
    return {"digest": f"sha256:{digest}", "size": len(data)}


def make_oci_layout(
    layout: Path,
    arches: tuple[str, ...] = ("x86_64", "arm64"),
    tag: str = "1.0",
    layer_size: int = 32 * 1024,
) -> Path:
    """An OCI layout with one image per arch (two layers each) under an index tagged ``tag``."""
    (layout / "blobs" / "sha256").mkdir(parents=True, exist_ok=True)
    (layout / "oci-layout").write_text('{"imageLayoutVersion":"1.0.0"}')
    entries = []
    for arch_name in arches:
        arch = get_arch(arch_name)
        layers = [
            _tar_gz({"etc/arch": arch.name.encode()}),
            _tar_gz({"opt/data.bin": os.urandom(layer_size)}),
        ]
        diff_ids = ["sha256:" + hashlib.sha256(gzip.decompress(t)).hexdigest() for t in layers]
        config = {
            "architecture": arch.oci,
            "os": "linux",
            "rootfs": {"type": "layers", "diff_ids": diff_ids},
            "config": {},
        }
        if arch.variant:
            config["variant"] = arch.variant
        manifest = {
            "schemaVersion": 2,
            "mediaType": media.OCI_MANIFEST,
            "config": {
                "mediaType": "application/vnd.oci.image.config.v1+json",
                **_put_blob(layout, json.dumps(config).encode()),
            },
            "layers": [
                {"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", **_put_blob(layout, t)}
                for t in layers
            ],
        }
        platform = {"architecture": arch.oci, "os": "linux"}
        if arch.variant:
            platform["variant"] = arch.variant
        entries.append(
            {
                "mediaType": media.OCI_MANIFEST,
                **_put_blob(layout, json.dumps(manifest).encode()),
                "platform": platform,
            }
        )
    index = {"schemaVersion": 2, "mediaType": media.OCI_INDEX, "manifests": entries}
    top = {
        "mediaType": media.OCI_INDEX,
        **_put_blob(layout, json.dumps(index).encode()),
        "annotations": {media.REF_NAME: tag},
    }
    (layout / "index.json").write_text(
        json.dumps({"schemaVersion": 2, "mediaType": media.OCI_INDEX, "manifests": [top]})
    )
    return layout
