"""What the release steps need from a registry: manifests, small blobs, tags and referrers.

``ManifestStore`` is the narrow interface the release code is written against, so that tag,
record and rollback logic reads as what it does. ``RegistryStore`` fits it onto
``registry.client.RegistryClient``, which owns auth, retries and the referrers fallback read.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from hepbuild.config.model import Registry
from hepbuild.registry.client import RegistryClient
from hepbuild.registry.connect import client_for_registry
from hepbuild.registry.media import DOCKER_LIST, DOCKER_MANIFEST, OCI_INDEX, OCI_MANIFEST

__all__ = ["DOCKER_LIST", "DOCKER_MANIFEST", "OCI_INDEX", "OCI_MANIFEST", "Manifest",
           "ManifestStore", "RegistryStore", "open_store"]


@dataclass(frozen=True)
class Manifest:
    data: bytes
    media_type: str
    digest: str

    @property
    def size(self) -> int:
        return len(self.data)

    def descriptor(self) -> dict[str, Any]:
        return {"mediaType": self.media_type, "digest": self.digest, "size": self.size}


class ManifestStore(Protocol):
    host: str

    def find_manifest(self, repository: str, reference: str) -> Manifest | None: ...

    def put_manifest(
        self, repository: str, reference: str, data: bytes, media_type: str
    ) -> str: ...

    def push_blob(self, repository: str, data: bytes) -> str: ...

    def get_blob(self, repository: str, digest: str) -> bytes: ...

    def list_tags(self, repository: str) -> list[str]: ...

    def referrers(self, repository: str, digest: str) -> list[dict[str, Any]]:
        """Descriptors of manifests whose subject is ``digest`` (the API or the fallback tag)."""
        ...


class RegistryStore:
    """``ManifestStore`` over the registry engineer's ``RegistryClient`` (auth, retries, tokens)."""

    def __init__(self, client: RegistryClient) -> None:
        self.client = client
        self.host = client.host

    def find_manifest(self, repository: str, reference: str) -> Manifest | None:
        if self.client.manifest_exists(repository, reference) is None:
            return None
        found = self.client.get_manifest(repository, reference)
        return Manifest(found.data, found.media_type, found.digest)

    def put_manifest(self, repository: str, reference: str, data: bytes, media_type: str) -> str:
        return self.client.put_manifest(repository, reference, data, media_type)

    def push_blob(self, repository: str, data: bytes) -> str:
        descriptor, _ = self.client.push_blob(repository, data)
        return descriptor.digest

    def get_blob(self, repository: str, digest: str) -> bytes:
        return self.client.get_blob_bytes(repository, digest)

    def list_tags(self, repository: str) -> list[str]:
        return self.client.list_tags(repository)

    def referrers(self, repository: str, digest: str) -> list[dict[str, Any]]:
        return [d.to_json() for d in self.client.referrers(repository, digest)]


def open_store(registry: Registry, env: Mapping[str, str]) -> RegistryStore:
    """A store for the profile's registry, with credentials from ``registry.auth``."""
    return RegistryStore(client_for_registry(registry, env))
