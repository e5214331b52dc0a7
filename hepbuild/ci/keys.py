"""Content keys already in the registry: the label that lets the planner skip unchanged cells.

Every image hepbuild builds carries ``org.hepbuild.content-key`` on its image config. When
the registry's image for a cell has the key the cell would get now, building it again would
produce the same image, so the plan skips it (``--force`` builds anyway).

The lookup is a plain callable, so tests can inject one; the real one reads the manifest and
the image config through hepbuild's registry client (one client, so one connection, per
registry for a whole plan).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping

from hepbuild.config.model import Registry
from hepbuild.errors import RegistryError, UsageError
from hepbuild.registry.client import RegistryClient
from hepbuild.registry.connect import client_for, client_for_registry
from hepbuild.registry.reference import parse_reference

CONTENT_KEY_LABEL = "org.hepbuild.content-key"

KeyLookup = Callable[[str], "str | None"]


def split_ref(ref: str) -> tuple[str, str, str]:
    """``host[:port]/repo/path:tag`` -> (host, repo, tag), read by registry.reference.

    The planner's references always name their registry and tag; a Docker Hub short name or
    a missing tag here means a broken profile, so they are refused rather than defaulted.
    """
    problem = RegistryError(f"{ref!r} is not a host/repository:tag reference")
    try:
        parsed = parse_reference(ref)
    except UsageError:
        raise problem from None
    explicit_tag = parsed.tag is not None and ref.endswith(f":{parsed.tag}")
    if not ref.startswith(f"{parsed.host}/") or parsed.digest or not explicit_tag:
        raise problem
    return parsed.host, parsed.repository, str(parsed.tag)


def registry_content_key(
    ref: str, *, client: RegistryClient | None = None, insecure: bool = False,
    env: Mapping[str, str] | None = None,
) -> str | None:
    """The content key label of the image at ``ref``, or None when there is no such image
    (or it has no key). Credentials come from the environment or the auth file, never argv."""
    host, repo, tag = split_ref(ref)
    own = client is None
    if client is None:
        client = client_for(host, insecure=insecure, env=env)
    try:
        return _content_key(client, repo, tag)
    finally:
        if own:
            client.close()


def _content_key(client: RegistryClient, repo: str, tag: str) -> str | None:
    if client.manifest_exists(repo, tag) is None:
        return None
    manifest = client.get_manifest(repo, tag)
    if manifest.is_index:
        return None  # per-arch tags hold one image; a list here was not written by hepbuild
    config_digest = (manifest.json().get("config") or {}).get("digest")
    if not config_digest:
        return None
    return label_from_config(client.get_blob_bytes(repo, config_digest), f"{repo}:{tag}")


def label_from_config(data: bytes, where: str) -> str | None:
    try:
        config = json.loads(data)
    except ValueError:  # bad JSON, or bytes in no Unicode encoding at all
        raise RegistryError(f"the image config of {where} is not JSON") from None
    if not isinstance(config, dict):
        raise RegistryError(f"the image config of {where} is not a JSON object")
    inner = config.get("config")
    labels = inner.get("Labels") if isinstance(inner, dict) else None
    value = labels.get(CONTENT_KEY_LABEL) if isinstance(labels, dict) else None
    return value if isinstance(value, str) and value else None


class RegistryKeyLookup:
    """The real lookup for a profile's registry; one client per host serves the whole plan."""

    def __init__(self, registry: Registry, env: Mapping[str, str] | None = None) -> None:
        self.registry = registry
        self.env = env
        self._clients: dict[str, RegistryClient] = {}
        self._unreachable: set[str] = set()

    def __call__(self, ref: str) -> str | None:
        host = split_ref(ref)[0]
        if host in self._unreachable:
            raise RegistryError(f"{host} was unreachable earlier in this plan")
        if host not in self._clients:
            # Few retries: a plan that cannot see the registry builds; it should not hang.
            self._clients[host] = client_for_registry(
                self.registry, self.env, host=host, retries=1, backoff=0.1)
        try:
            return registry_content_key(ref, client=self._clients[host])
        except RegistryError as exc:
            if exc.message.startswith("cannot reach"):
                self._unreachable.add(host)
            raise

    def close(self) -> None:
        for client in self._clients.values():
            client.close()
        self._clients.clear()

    def __enter__(self) -> RegistryKeyLookup:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
