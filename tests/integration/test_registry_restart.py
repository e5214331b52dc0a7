"""The registry dies in the middle of a large upload; the push finishes after it comes back,
and at no moment does the tag point at content the registry does not have."""

from __future__ import annotations

import hashlib
import threading
import time
from pathlib import Path

import pytest
from registry_fixtures import make_sif

from hepbuild.registry.client import MiB, RegistryClient
from hepbuild.registry.oras import push_sif
from hepbuild.registry.server import LocalRegistry

pytestmark = [pytest.mark.registry, pytest.mark.slow]
SIZE = 64 * MiB


def _tag_is_consistent(registry: LocalRegistry, repo: str, tag: str) -> bool:
    """True when the tag is absent, or present with every blob it names."""
    with RegistryClient(registry.url, insecure=True, retries=0) as client:
        if client.manifest_exists(repo, tag) is None:
            return True
        manifest = client.get_manifest(repo, tag).json()
        blobs = [manifest["config"], *manifest["layers"]]
        return all(client.blob_exists(repo, b["digest"]) for b in blobs)


def test_push_survives_a_registry_restart_mid_upload(tmp_path: Path) -> None:
    sif_path = make_sif(tmp_path / "big.sif", "x86_64", payload_size=SIZE)
    repo, tag = "library/big", "1.0"
    observations: list[bool] = []
    killed_at: list[int] = []
    with LocalRegistry(tmp_path / "registry") as registry:
        client = RegistryClient(registry.url, insecure=True, chunk_size=1 * MiB, backoff=0.2)
        restarter = threading.Thread(
            target=_kill_then_restart, args=(registry, client, observations, killed_at, repo, tag)
        )
        restarter.start()
        result = push_sif(client, sif_path, f"oras://{registry.url}/{repo}:{tag}")
        restarter.join(timeout=60)
        observations.append(_tag_is_consistent(registry, repo, tag))

        out = tmp_path / "blob"
        layer = client.get_manifest(repo, tag).json()["layers"][0]
        client.get_blob(repo, layer["digest"], out)
        client.close()

    assert len(observations) == 2 and all(observations)
    assert len(killed_at) == 1 and 16 * MiB <= killed_at[0] < SIZE  # killed mid-upload
    # Usually the upload resumes from the registry's Range (no byte sent twice). When the kill
    # lands mid-chunk, docker-registry 2.8 cancels that session on restart ("upload resumed at
    # wrong offset") and the client starts a new one; either way nothing is lost.
    assert client.bytes_uploaded >= sif_path.stat().st_size + 2
    assert client.stats.retries >= 1  # it really had to retry
    assert (
        hashlib.sha256(out.read_bytes()).hexdigest()
        == hashlib.sha256(sif_path.read_bytes()).hexdigest()
    )
    assert result.digest.startswith("sha256:")


def _kill_then_restart(
    registry: LocalRegistry,
    client: RegistryClient,
    observations: list[bool],
    killed_at: list[int],
    repo: str,
    tag: str,
) -> None:
    deadline = time.monotonic() + 60
    while client.bytes_uploaded < 16 * MiB and time.monotonic() < deadline:
        time.sleep(0.005)
    killed_at.append(client.bytes_uploaded)
    registry.kill()  # SIGKILL: connections drop mid-request
    time.sleep(0.5)
    registry.start()
    observations.append(_tag_is_consistent(registry, repo, tag))
