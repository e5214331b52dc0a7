"""Image references in skopeo's spelling, and fetching/storing them with skopeo.

Registry, archive and containers-storage images pass through a temporary OCI layout: skopeo
copies them in (or out), hepbuild does everything else. Credentials only ever reach skopeo as
an auth file path, never on the command line.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from hepbuild import tools
from hepbuild.errors import ImageError, UsageError
from hepbuild.image.oci import INDEX_TYPES
from hepbuild.image.squashfs import DEFAULT_LEVEL
from hepbuild.platforms import Platform, host_arch, parse_platform, pick_platform
from hepbuild.registry.reference import parse_reference

OCI_LIKE = ("oci", "oci-archive", "docker-archive", "docker", "containers-storage")
KINDS = (*OCI_LIKE, "sif", "sandbox")


@dataclass(frozen=True)
class ImageRef:
    transport: str  # one of KINDS
    location: str  # path or registry reference
    tag: str | None = None  # only for oci:DIR:TAG

    @property
    def format(self) -> str:
        return self.transport if self.transport in ("sif", "sandbox") else "oci"

    @property
    def path(self) -> Path:
        return Path(self.location)

    def skopeo_name(self) -> str:
        if self.transport == "docker":
            return f"docker://{self.location}"
        return f"{self.transport}:{self.location}"

    def __str__(self) -> str:
        if self.transport == "oci" and self.tag:
            return f"oci:{self.location}:{self.tag}"
        return self.skopeo_name()


def parse_ref(text: str) -> ImageRef:
    """``docker://REF``, ``oci:DIR[:TAG]``, ``sif:FILE``, ``sandbox:DIR`` and the rest."""
    if text.startswith("docker://"):
        rest = text[len("docker://"):]
        if not rest:
            raise UsageError(f"{text!r}: no image reference after docker://")
        parse_reference(text)  # the one registry-reference parser checks host, port, name
        return ImageRef("docker", rest)
    transport, sep, rest = text.partition(":")
    if not sep or transport not in KINDS or not rest:
        raise UsageError(
            f"cannot read image reference {text!r}",
            "write TRANSPORT:WHERE with one of docker://REF, oci:DIR[:TAG], oci-archive:FILE, "
            "docker-archive:FILE, containers-storage:REF, sif:FILE, sandbox:DIR",
        )
    if transport == "oci":
        return _parse_oci(rest)
    return ImageRef(transport, rest)


def _parse_oci(rest: str) -> ImageRef:
    """``DIR:TAG`` or ``DIR``; a folder whose own name has a colon is a folder, not a tag."""
    location, sep, tag = rest.rpartition(":")
    if sep and location and "/" not in tag and not _is_folder_with_colon(rest, location):
        return ImageRef("oci", location, tag or None)
    return ImageRef("oci", rest)


def _is_folder_with_colon(rest: str, location: str) -> bool:
    return Path(rest).is_dir() and not Path(location).is_dir()


@dataclass(frozen=True)
class Access:
    """How to reach registries, and how hard to pack squashfs (the caller's options)."""

    authfile: Path | None = None
    tls_verify: bool = True
    compression_level: int = DEFAULT_LEVEL


def _access_args(ref: ImageRef, access: Access, side: str) -> list[str]:
    if ref.transport != "docker":
        return []
    args = [f"--{side}-tls-verify={'true' if access.tls_verify else 'false'}"]
    if access.authfile is not None:
        args.append(f"--{side}-authfile={access.authfile}")
    return args


def fetch_to_layout(ref: ImageRef, layout: Path, tag: str, arch: str | None,
                    access: Access) -> None:
    """Copy a registry/archive/storage image into ``layout`` as ``tag`` (one platform)."""
    source = ref.skopeo_name()
    if ref.transport == "docker":
        source = _pick_registry_platform(ref, arch, access)
    skopeo = tools.find_tool("skopeo")
    argv = [skopeo.path, "copy", "--quiet", *_access_args(ref, access, "src"), source,
            f"oci:{layout}:{tag}"]
    tools.run(argv, hint=f"skopeo could not read {ref}")


def _pick_registry_platform(ref: ImageRef, arch: str | None, access: Access) -> str:
    """For a multi-arch image, choose the entry by hepbuild's platform rules, not skopeo's."""
    skopeo = tools.find_tool("skopeo")
    argv = [skopeo.path, "inspect", "--raw"]
    if access.authfile is not None:
        argv.append(f"--authfile={access.authfile}")
    argv += [f"--tls-verify={'true' if access.tls_verify else 'false'}", ref.skopeo_name()]
    raw = tools.run(argv, hint=f"skopeo could not read {ref}").stdout
    try:
        manifest = json.loads(raw)
    except ValueError:
        raise ImageError(f"{ref}: the registry sent a manifest that is not JSON") from None
    if manifest.get("mediaType") not in INDEX_TYPES and "manifests" not in manifest:
        return ref.skopeo_name()
    entries = [m for m in manifest.get("manifests") or [] if isinstance(m.get("platform"), dict)]
    platforms = [Platform(m["platform"].get("os", ""), m["platform"].get("architecture", ""),
                          m["platform"].get("variant") or None) for m in entries]
    want = parse_platform(arch or host_arch().name)
    chosen = entries[pick_platform(platforms, want)]
    return f"docker://{repository_of(ref.location)}@{chosen['digest']}"


def repository_of(reference: str) -> str:
    """``host:5000/a/b:tag`` or ``a/b@sha256:..`` without its tag or digest, as written."""
    parsed = parse_reference(reference)
    name = reference.partition("@")[0]
    suffix = f":{parsed.tag}"
    return name[: -len(suffix)] if parsed.tag and name.endswith(suffix) else name


def store_from_layout(layout: Path, tag: str, ref: ImageRef, access: Access) -> None:
    """Copy our OCI layout out to an archive, containers-storage or a registry."""
    skopeo = tools.find_tool("skopeo")
    argv = [skopeo.path, "copy", "--quiet", *_access_args(ref, access, "dest"),
            f"oci:{layout}:{tag}", ref.skopeo_name()]
    tools.run(argv, hint=f"skopeo could not write {ref}")
