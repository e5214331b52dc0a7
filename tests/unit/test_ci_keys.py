"""Reference parsing, the label read from an image config, unreachable registries, publish."""

from __future__ import annotations

import socket
import time

import pytest

from hepbuild.ci import keys
from hepbuild.commands.ci import wants_publish
from hepbuild.config.model import Registry
from hepbuild.errors import RegistryError


@pytest.mark.parametrize(("ref", "parts"), [
    ("127.0.0.1:5000/site/base:1.0-deb-x86_64", ("127.0.0.1:5000", "site/base", "1.0-deb-x86_64")),
    ("harbor.example.org/proj/a/b:v1", ("harbor.example.org", "proj/a/b", "v1")),
])
def test_split_ref(ref: str, parts: tuple[str, str, str]) -> None:
    assert keys.split_ref(ref) == parts


@pytest.mark.parametrize("ref", ["no-slash:tag", "host/repo", "host:5000/repo", "/repo:tag"])
def test_split_ref_rejects_refs_without_host_repo_and_tag(ref: str) -> None:
    with pytest.raises(RegistryError, match="is not a host/repository:tag reference"):
        keys.split_ref(ref)


def test_label_from_config() -> None:
    config = b'{"config": {"Labels": {"org.hepbuild.content-key": "sha256:abc", "x": "y"}}}'
    assert keys.label_from_config(config, "r") == "sha256:abc"
    assert keys.label_from_config(b'{"config": {"Labels": null}}', "r") is None
    assert keys.label_from_config(b"{}", "r") is None
    assert keys.label_from_config(b'{"config": "odd"}', "r") is None
    with pytest.raises(RegistryError, match="image config of r is not JSON"):
        keys.label_from_config(b"\x00not json", "r")
    with pytest.raises(RegistryError, match="image config of r is not JSON"):
        keys.label_from_config(b"{truncated", "r")
    with pytest.raises(RegistryError, match="is not a JSON object"):
        keys.label_from_config(b"[1, 2]", "r")


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_unreachable_registry_fails_fast_and_once() -> None:
    host = f"127.0.0.1:{closed_port()}"
    with keys.RegistryKeyLookup(Registry("t", host, insecure=True), env={}) as lookup:
        started = time.monotonic()
        with pytest.raises(RegistryError, match=f"cannot reach {host}"):
            lookup(f"{host}/a/b:1")
        with pytest.raises(RegistryError, match="was unreachable earlier in this plan"):
            lookup(f"{host}/a/c:1")
        assert time.monotonic() - started < 5


@pytest.mark.parametrize(("env", "publish"), [
    ({}, False),
    ({"CI_COMMIT_BRANCH": "main", "CI_DEFAULT_BRANCH": "main"}, True),
    ({"CI_COMMIT_BRANCH": "feature", "CI_DEFAULT_BRANCH": "main"}, False),
    ({"CI_PIPELINE_SOURCE": "schedule"}, True),
    ({"CI_PIPELINE_SOURCE": "merge_request_event", "CI_MERGE_REQUEST_IID": "3",
      "CI_COMMIT_BRANCH": "main", "CI_DEFAULT_BRANCH": "main"}, False),
])
def test_wants_publish(env: dict[str, str], publish: bool) -> None:
    assert wants_publish(env) is publish
