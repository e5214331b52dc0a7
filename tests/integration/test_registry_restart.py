"""The registry dies in the middle of a large upload; the push finishes after it comes back,
and at no moment does the tag point at content the registry does not have."""

from __future__ import annotations

import hashlib
import threading
import time
from pathlib import Path

import pytest
from registry_fixtures import make_sif

from hepbuild.registry.client import MiB, RegistryClient, RegistryUnreachable
from hepbuild.registry.oras import push_sif
from hepbuild.registry.server import LocalRegistry

pytestmark = [pytest.mark.registry, pytest.mark.slow]
SIZE = 64 * MiB
KILL_AFTER = 16 * MiB
REPO, TAG = "library/big", "1.0"


def _tag_is_consistent(registry: LocalRegistry) -> bool | None:
    """True when the tag is absent or complete, False when it dangles, None when unreachable."""
    try:
        with RegistryClient(registry.url, insecure=True, retries=0) as client:
            if client.manifest_exists(REPO, TAG) is None:
                return True
            manifest = client.get_manifest(REPO, TAG).json()
            blobs = [manifest["config"], *manifest["layers"]]
            return all(client.blob_exists(REPO, b["digest"]) for b in blobs)
    except RegistryUnreachable:
        return None  # the registry is down right now


class Watch:
    """Samples the tag all through the push, and kills/restarts the registry once."""

    def __init__(self, registry: LocalRegistry, client: RegistryClient) -> None:
        self.registry, self.client = registry, client
        self.samples: list[bool | None] = []
        self.killed_at: int | None = None
        self.done = threading.Event()
        self._threads = [threading.Thread(target=self._sample), threading.Thread(target=self._kill)]

    def __enter__(self) -> Watch:
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.done.set()
        for thread in self._threads:
            thread.join(timeout=60)

    def _sample(self) -> None:
        while not self.done.is_set():
            self.samples.append(_tag_is_consistent(self.registry))
            time.sleep(0.1)

    def _kill(self) -> None:
        deadline = time.monotonic() + 60
        while self.client.bytes_uploaded < KILL_AFTER and time.monotonic() < deadline:
            time.sleep(0.005)
        self.killed_at = self.client.bytes_uploaded
        self.registry.kill()  # SIGKILL: connections drop mid-request
        time.sleep(0.5)
        self.registry.start()


def test_push_survives_a_registry_restart_mid_upload(tmp_path: Path) -> None:
    sif_path = make_sif(tmp_path / "big.sif", "x86_64", payload_size=SIZE)
    with LocalRegistry(tmp_path / "registry") as registry:
        client = RegistryClient(registry.url, insecure=True, chunk_size=1 * MiB, backoff=0.2)
        with Watch(registry, client) as watch:
            result = push_sif(client, sif_path, f"oras://{registry.url}/{REPO}:{TAG}")
        final = _tag_is_consistent(registry)
        tagged = client.manifest_exists(REPO, TAG)
        out = tmp_path / "blob"
        layer = client.get_manifest(REPO, TAG).json()["layers"][0]
        client.get_blob(REPO, layer["digest"], out)
        client.close()

    assert watch.killed_at is not None and KILL_AFTER <= watch.killed_at < SIZE  # mid-upload
    assert False not in watch.samples  # never a dangling tag
    assert watch.samples.count(True) >= 2 and None in watch.samples  # sampled up and down
    assert final is True
    # Usually the upload resumes from the registry's Range (no byte sent twice). When the kill
    # lands mid-chunk, docker-registry 2.8 cancels that session on restart ("upload resumed at
    # wrong offset") and the client starts a new one; either way nothing is lost.
    assert client.bytes_uploaded >= sif_path.stat().st_size + 2
    assert client.stats.retries >= 1
    expected = hashlib.sha256(sif_path.read_bytes()).hexdigest()
    assert hashlib.sha256(out.read_bytes()).hexdigest() == expected
    assert result.digest == tagged
