"""Make a RegistryClient for a host from the command line's TLS switches and stored logins."""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

from hepbuild.config.model import Registry
from hepbuild.registry.auth import load_credentials
from hepbuild.registry.client import DEFAULT_CHUNK, RegistryClient


def client_for(
    host: str,
    *,
    insecure: bool = False,
    ca_file: str | None = None,
    chunk_size: int = DEFAULT_CHUNK,
    env: Mapping[str, str] | None = None,
    **options: Any,
) -> RegistryClient:
    """``options`` go to RegistryClient as they are (retries, backoff)."""
    credentials = load_credentials(host, os.environ if env is None else env)
    return RegistryClient(
        host, insecure=insecure, ca_file=ca_file, credentials=credentials, chunk_size=chunk_size,
        **options,
    )


def client_for_registry(
    registry: Registry, env: Mapping[str, str] | None = None, *, host: str | None = None,
    **options: Any,
) -> RegistryClient:
    """A client for a profile's registry (or ``host`` with that registry's TLS settings)."""
    return client_for(host or registry.host, insecure=registry.insecure,
                      ca_file=registry.ca_file, env=env, **options)
