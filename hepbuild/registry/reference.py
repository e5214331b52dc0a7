"""Image references: ``[docker://|oras://][//]host[:port]/repo[:tag][@sha256:…]``."""

from __future__ import annotations

import re
from dataclasses import dataclass

from hepbuild.errors import UsageError

DEFAULT_HOST = "index.docker.io"
DEFAULT_TAG = "latest"
TRANSPORTS = ("docker", "oras")
_REPO_RE = re.compile(
    r"^[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*(?:/[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*)*$"
)
_TAG_RE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$")
_DIGEST_RE = re.compile(r"^sha256:[0-9a-f]{64}$")


@dataclass(frozen=True)
class Reference:
    host: str
    repository: str
    tag: str | None = None
    digest: str | None = None
    transport: str = "docker"

    @property
    def ref(self) -> str:
        """What to ask the registry for: the digest if pinned, else the tag."""
        return self.digest or self.tag or DEFAULT_TAG

    def with_tag(self, tag: str) -> Reference:
        return Reference(self.host, self.repository, tag, None, self.transport)

    def __str__(self) -> str:
        text = f"{self.host}/{self.repository}"
        if self.tag:
            text += f":{self.tag}"
        if self.digest:
            text += f"@{self.digest}"
        return text


def parse_reference(text: str, *, default_transport: str = "docker") -> Reference:
    transport, rest = _split_transport(text.strip(), default_transport)
    rest = rest.lstrip("/") if rest.startswith("//") else rest
    if not rest:
        raise UsageError(
            f"{text!r} names no image", "write host:port/project/name[:tag] after the transport"
        )
    name, digest = _split_digest(text, rest)
    host, path = _split_host(text, name)
    repository, tag = _split_tag(path)
    if not repository or not _REPO_RE.match(repository):
        raise UsageError(
            f"invalid repository name in {text!r}",
            "repository names are lower case: host:port/project/name[:tag]",
        )
    if tag is not None and not _TAG_RE.match(tag):
        raise UsageError(
            f"invalid tag {tag!r} in {text!r}",
            "tags use letters, digits, '_', '.' and '-' (at most 128)",
        )
    if tag is None and digest is None:
        tag = DEFAULT_TAG
    return Reference(host, repository, tag, digest, transport)


def _split_transport(text: str, default: str) -> tuple[str, str]:
    scheme, sep, rest = text.partition("://")
    if not sep:
        return default, text
    if scheme not in TRANSPORTS:
        raise UsageError(
            f"unknown transport {scheme}:// in {text!r}",
            "registry destinations are docker://REF or oras://REF",
        )
    return scheme, rest


def _split_digest(text: str, rest: str) -> tuple[str, str | None]:
    name, sep, digest = rest.partition("@")
    if sep and not _DIGEST_RE.match(digest):
        raise UsageError(f"invalid digest in {text!r}", "write it as @sha256:<64 hex digits>")
    return name, digest if sep else None


def _looks_like_host(part: str) -> bool:
    return "." in part or ":" in part or part.startswith("[") or part == "localhost"


def _looks_like_host_only(name: str) -> bool:
    """``127.0.0.1:5099``, ``harbor.example``, ``localhost:5000``: a registry without a path.

    Docker would read these as Docker Hub names; hepbuild refuses them rather than contact a
    host the user did not name. A name without a dot stays a Docker Hub name, whatever its
    tag: ``ubuntu:22.04`` and ``python:3`` are images, as Docker reads them.
    """
    base = name.partition(":")[0]
    return "." in base or base == "localhost" or name.startswith("[")


def _split_host(text: str, name: str) -> tuple[str, str]:
    first, sep, remainder = name.partition("/")
    if (sep and _looks_like_host(first)) or (not sep and _looks_like_host_only(name)):
        if not remainder:
            # Read as a Docker Hub name, this would send the request to a host nobody named.
            raise UsageError(
                f"{text!r} names the registry {first} but no repository",
                f"write {first}/PROJECT/NAME[:TAG]; a Docker Hub image is written in full, "
                f"{DEFAULT_HOST}/library/NAME:TAG",
            )
        check_host(text, first)
        return first, remainder
    path = name if "/" in name else f"library/{name}"
    return DEFAULT_HOST, path


_HOSTNAME_RE = re.compile(r"^[A-Za-z0-9](?:[A-Za-z0-9.-]*[A-Za-z0-9])?$")
_IPV6_RE = re.compile(r"^[0-9A-Fa-f:.]+$")


def check_host(text: str, host: str) -> None:
    """``name[:port]`` or ``[v6]:port`` with a port in 1-65535, else a UsageError naming it."""
    hint = "write host, host:port or [ipv6]:port with a port from 1 to 65535"
    if host.startswith("["):
        address, bracket, rest = host[1:].partition("]")
        if not bracket or not address or not _IPV6_RE.match(address):
            raise UsageError(f"invalid IPv6 address {host!r} in {text!r}", hint)
        if rest and not rest.startswith(":"):
            raise UsageError(f"invalid registry host {host!r} in {text!r}", hint)
        port = rest[1:] if rest else None
    else:
        address, colon, rest = host.partition(":")
        if not _HOSTNAME_RE.match(address):
            raise UsageError(f"invalid registry host {host!r} in {text!r}", hint)
        port = rest if colon else None
    if port is not None and not (port.isascii() and port.isdigit() and 1 <= int(port) <= 65535):
        raise UsageError(f"invalid port {port!r} in {text!r}", hint)


def _split_tag(path: str) -> tuple[str, str | None]:
    repository, sep, tag = path.rpartition(":")
    if sep and "/" not in tag:
        return repository, tag
    return path, None
