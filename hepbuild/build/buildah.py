"""Every buildah call hepbuild makes, on top of ``hepbuild.tools``.

The argv builders are pure functions of their inputs, so they are unit-tested as lists;
``Buildah`` runs them. Credentials only ever reach buildah as ``--authfile``; ``--creds``
is never built. The storage driver and the isolation are chosen once per process from the
environment the caller passes in, a flag, or a probe (see ``choose_settings``).
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from functools import cache
from pathlib import Path
from typing import IO, Any

from hepbuild import tools
from hepbuild.errors import UsageError
from hepbuild.platforms import Arch

ISOLATIONS = ("chroot", "oci", "rootless")
STORAGE_DRIVERS = ("overlay", "vfs")
ENV_ISOLATION = "HEPBUILD_BUILDAH_ISOLATION"
ENV_STORAGE_DRIVER = "HEPBUILD_STORAGE_DRIVER"

# Files and variables that say "this process runs inside a container or a CI job".
_CONTAINER_MARKERS = ("/.dockerenv", "/run/.containerenv")
_CI_VARIABLES = ("CI", "GITLAB_CI", "GITHUB_ACTIONS")


@dataclass(frozen=True)
class BuildahSettings:
    storage_driver: str
    isolation: str
    authfile: str | None = None  # registry credentials; never passed as --creds
    tls_verify: bool = True  # False only for the insecure local registry
    storage_root: str | None = None  # --root, for a private store (tests, CI caches)
    reasons: tuple[str, ...] = field(default=(), compare=False)  # why each choice was made

    def with_registry(self, *, authfile: str | None, tls_verify: bool) -> BuildahSettings:
        return replace(self, authfile=authfile, tls_verify=tls_verify)


# --- choosing the storage driver and isolation ---------------------------------------------


def in_container_or_ci(env: Mapping[str, str], marker_exists: Callable[[str], bool]) -> bool:
    if any(env.get(name) for name in _CI_VARIABLES):
        return True
    return any(marker_exists(path) for path in _CONTAINER_MARKERS)


def pick_isolation(
    env: Mapping[str, str],
    flag: str | None,
    *,
    euid: int,
    marker_exists: Callable[[str], bool],
    oci_runtime_works: Callable[[], bool],
) -> tuple[str, str]:
    """The isolation for RUN steps and the reason it was chosen."""
    explicit = flag or env.get(ENV_ISOLATION)
    if explicit:
        source = "--isolation" if flag else ENV_ISOLATION
        return _checked(explicit, ISOLATIONS, source), f"isolation {explicit} from {source}"
    if euid != 0:
        return "chroot", "isolation chroot: running rootless"
    if in_container_or_ci(env, marker_exists):
        # Nested OCI runtimes need privileges a container or CI job rarely has.
        return "chroot", "isolation chroot: running inside a container or CI job"
    if oci_runtime_works():
        return "oci", "isolation oci: crun/runc works on this host"
    return "chroot", "isolation chroot: no working crun or runc"


def pick_storage_driver(
    env: Mapping[str, str], flag: str | None, *, overlay_works: Callable[[], bool]
) -> tuple[str, str]:
    explicit = flag or env.get(ENV_STORAGE_DRIVER)
    if explicit:
        source = "--storage-driver" if flag else ENV_STORAGE_DRIVER
        return _checked(explicit, STORAGE_DRIVERS, source), f"storage {explicit} from {source}"
    if overlay_works():
        return "overlay", "storage overlay: it works here"
    return "vfs", "storage vfs: overlay does not work here (slower, uses more disk)"


def _checked(value: str, allowed: Sequence[str], source: str) -> str:
    if value not in allowed:
        raise UsageError(f"{source}={value!r} is not known", f"use one of: {', '.join(allowed)}")
    return value


@cache
def _probe_overlay(storage_root: str | None) -> bool:
    argv = ["buildah", *(["--root", storage_root] if storage_root else [])]
    argv += ["--storage-driver", "overlay", "info", "--format", "{{.store.GraphDriverName}}"]
    result = tools.run(argv, check=False, quiet=True, timeout=60)
    return result.returncode == 0 and result.text.strip() == "overlay"


@cache
def _probe_oci_runtime() -> bool:
    for runtime in ("crun", "runc"):
        if not tools.have_tool(runtime):
            continue
        if tools.run([runtime, "--version"], check=False, quiet=True).returncode == 0:
            return True
    return False


def choose_settings(
    env: Mapping[str, str],
    *,
    isolation: str | None = None,
    storage_driver: str | None = None,
    storage_root: str | None = None,
) -> BuildahSettings:
    """Settings for this run; the probes run at most once per process."""
    isolation_name, why_isolation = pick_isolation(
        env, isolation, euid=os.geteuid(), marker_exists=os.path.exists,
        oci_runtime_works=_probe_oci_runtime,
    )
    driver, why_driver = pick_storage_driver(
        env, storage_driver, overlay_works=lambda: _probe_overlay(storage_root)
    )
    return BuildahSettings(
        driver, isolation_name, storage_root=storage_root, reasons=(why_driver, why_isolation)
    )


# --- argv builders (pure) ------------------------------------------------------------------


def global_args(settings: BuildahSettings) -> list[str]:
    argv = ["buildah"]
    if settings.storage_root:
        argv += ["--root", settings.storage_root]
    return argv + ["--storage-driver", settings.storage_driver]


def platform_args(arch: Arch) -> list[str]:
    argv = ["--os", "linux", "--arch", arch.oci]
    return argv + (["--variant", arch.variant] if arch.variant else [])


def registry_args(settings: BuildahSettings) -> list[str]:
    argv = [] if settings.tls_verify else ["--tls-verify=false"]
    return argv + (["--authfile", settings.authfile] if settings.authfile else [])


def build_argv(
    settings: BuildahSettings,
    *,
    dockerfile: Path,
    context: Path,
    tag: str,
    arch: Arch,
    labels: Mapping[str, str] | None = None,
    build_args: Mapping[str, str] | None = None,
    pull: str = "missing",
) -> list[str]:
    argv = global_args(settings) + ["build", "--isolation", settings.isolation]
    argv += platform_args(arch) + registry_args(settings)
    argv += [f"--pull={_pull_value(pull)}", "--layers", "-f", str(dockerfile), "-t", tag]
    for key, value in sorted((labels or {}).items()):
        argv += ["--label", f"{key}={value}"]
    for key, value in sorted((build_args or {}).items()):
        argv += ["--build-arg", f"{key}={value}"]
    return argv + [str(context)]


def _pull_value(policy: str) -> str:
    # buildah 1.28 spells "pull only when missing" as false; the flag needs the = form.
    values = {"missing": "false", "always": "always", "never": "never", "newer": "true"}
    return values[policy]


def push_argv(settings: BuildahSettings, source: str, dest: str, digestfile: Path) -> list[str]:
    argv = global_args(settings) + ["push"] + registry_args(settings)
    return argv + ["--digestfile", str(digestfile), source, f"docker://{dest}"]


def tag_argv(settings: BuildahSettings, source: str, *names: str) -> list[str]:
    return global_args(settings) + ["tag", source, *names]


def rmi_argv(settings: BuildahSettings, *names: str) -> list[str]:
    return global_args(settings) + ["rmi", *names]


def from_argv(
    settings: BuildahSettings, image: str, name: str, *, pull: str = "never"
) -> list[str]:
    argv = global_args(settings) + ["from", "--isolation", settings.isolation]
    argv += [f"--pull={_pull_value(pull)}", "--name", name]
    if pull != "never":
        argv += registry_args(settings)
    return argv + [image]


def scratch_argv(settings: BuildahSettings, name: str) -> list[str]:
    return global_args(settings) + ["from", "--name", name, "scratch"]


def run_argv(settings: BuildahSettings, container: str, command: str) -> list[str]:
    argv = global_args(settings) + ["run", "--isolation", settings.isolation, container]
    return argv + ["--", "/bin/sh", "-c", command]


def add_argv(settings: BuildahSettings, container: str, source: Path, dest: str = "/") -> list[str]:
    return global_args(settings) + ["add", "--quiet", container, str(source), dest]


def config_argv(
    settings: BuildahSettings, container: str, arch: Arch, *, cmd: str,
    labels: Mapping[str, str] | None = None,
) -> list[str]:
    argv = global_args(settings) + ["config"] + platform_args(arch) + ["--cmd", cmd]
    for key, value in sorted((labels or {}).items()):
        argv += ["--label", f"{key}={value}"]
    return argv + [container]


def commit_argv(settings: BuildahSettings, container: str, image: str) -> list[str]:
    return global_args(settings) + ["commit", "--quiet", "--rm", container, image]


def rm_argv(settings: BuildahSettings, container: str) -> list[str]:
    return global_args(settings) + ["rm", container]


def inspect_image_argv(settings: BuildahSettings, image: str) -> list[str]:
    return global_args(settings) + ["inspect", "--type", "image", image]


# --- running them --------------------------------------------------------------------------


@dataclass(frozen=True)
class ImageFacts:
    image_id: str
    digest: str  # of the manifest in local storage (not the pushed one)
    size: int  # sum of the uncompressed layer sizes
    platform: str  # linux/arm64/v8 style


def image_facts(inspect_json: Mapping[str, Any]) -> ImageFacts:
    """What we report about a local image, read from ``buildah inspect --type image``."""
    manifest = json.loads(inspect_json.get("Manifest") or "{}")
    size = sum(int(layer.get("size", 0)) for layer in manifest.get("layers", []))
    oci = inspect_json.get("OCIv1") or {}
    platform = f"{oci.get('os', 'linux')}/{oci.get('architecture', '?')}"
    if oci.get("variant"):
        platform += f"/{oci['variant']}"
    return ImageFacts(inspect_json.get("FromImageID", ""), inspect_json.get("FromImageDigest", ""),
                      size, platform)


@contextmanager
def _digest_file() -> Iterator[Path]:
    fd, name = tempfile.mkstemp(prefix="hepbuild-digest-")
    os.close(fd)
    try:
        yield Path(name)
    finally:
        Path(name).unlink(missing_ok=True)


class Buildah:
    """Runs buildah with one set of settings. Thread-safe: it keeps no mutable state."""

    def __init__(self, settings: BuildahSettings) -> None:
        tools.find_tool("buildah", min_version="1.23")
        self.settings = settings

    def build(self, *, dockerfile: Path, context: Path, tag: str, arch: Arch, log: IO[bytes],
              labels: Mapping[str, str] | None = None) -> None:
        argv = build_argv(self.settings, dockerfile=dockerfile, context=context, tag=tag,
                          arch=arch, labels=labels)
        tools.run(argv, log_file=log)

    def tag(self, source: str, *names: str) -> None:
        tools.run(tag_argv(self.settings, source, *names))

    def untag(self, *names: str) -> None:
        tools.run(rmi_argv(self.settings, *names), check=False)

    def push(self, source: str, dest: str, log: IO[bytes] | None = None) -> str:
        """Push and return the digest of the manifest the registry now holds."""
        with _digest_file() as digestfile:
            tools.run(push_argv(self.settings, source, dest, digestfile), log_file=log)
            return digestfile.read_text(encoding="utf-8").strip()

    def inspect_image(self, image: str) -> ImageFacts:
        result = tools.run(inspect_image_argv(self.settings, image), quiet=True)
        return image_facts(json.loads(result.text))

    def image_exists(self, image: str) -> bool:
        argv = global_args(self.settings) + ["inspect", "--type", "image", "--format", "x", image]
        return tools.run(argv, check=False, quiet=True).returncode == 0

    def from_image(self, image: str, name: str, log: IO[bytes] | None = None) -> str:
        tools.run(from_argv(self.settings, image, name), log_file=log)
        return name

    def from_scratch(self, name: str) -> str:
        tools.run(scratch_argv(self.settings, name))
        return name

    def run_in(self, container: str, command: str, log: IO[bytes]) -> int:
        result = tools.run(run_argv(self.settings, container, command), log_file=log, check=False)
        return result.returncode

    def add(self, container: str, source: Path, dest: str = "/") -> None:
        tools.run(add_argv(self.settings, container, source, dest))

    def configure(self, container: str, arch: Arch, *, cmd: str,
                  labels: Mapping[str, str] | None = None) -> None:
        tools.run(config_argv(self.settings, container, arch, cmd=cmd, labels=labels))

    def commit(self, container: str, image: str) -> None:
        tools.run(commit_argv(self.settings, container, image))

    def remove_container(self, container: str) -> None:
        tools.run(rm_argv(self.settings, container), check=False, quiet=True)
