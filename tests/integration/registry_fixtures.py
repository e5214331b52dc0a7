"""Pytest fixtures for throwaway registries, for any engineer's integration tests.

Import the ones you need in your test module (or conftest)::

    from tests.integration.registry_fixtures import registry_http  # noqa: F401

Each fixture is session-scoped, so one registry per set-up runs per xdist worker. Tests using
them must carry ``@pytest.mark.registry``. Use a repository name unique to your test, since
the registry is shared within the worker.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

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
