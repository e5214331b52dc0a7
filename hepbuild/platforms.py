"""Every spelling of an architecture, in one place.

The centre speaks of x86, x86_64, ARM and ARM64. OCI, RPM, Debian, qemu, the kernel and
SIF each spell these differently; nothing outside this module should carry such literals.
"""

from __future__ import annotations

import platform as _pyplatform
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from hepbuild.errors import UsageError


@dataclass(frozen=True)
class Arch:
    name: str  # the centre's name, used in cell ids
    oci: str  # OCI / Go GOARCH
    variant: str | None  # OCI platform variant we write
    rpm: str  # RPM basearch
    deb: str  # Debian architecture
    qemu: str  # qemu-user binary suffix and binfmt_misc entry name
    uname: str  # `uname -m` inside the image
    sif: str  # SIF two-digit arch code
    bits: int

    @property
    def platform(self) -> str:
        """``linux/arm64/v8`` style, as buildah's ``--platform`` and OCI indexes spell it."""
        base = f"linux/{self.oci}"
        return f"{base}/{self.variant}" if self.variant else base


ARCHES: tuple[Arch, ...] = (
    Arch("x86", "386", None, "i686", "i386", "i386", "i686", "01", 32),
    Arch("x86_64", "amd64", None, "x86_64", "amd64", "x86_64", "x86_64", "02", 64),
    Arch("arm", "arm", "v7", "armhfp", "armhf", "arm", "armv7l", "03", 32),
    Arch("arm64", "arm64", "v8", "aarch64", "arm64", "aarch64", "aarch64", "04", 64),
)

# Every other spelling we accept on input, mapped to the centre's name.
_ALIASES: dict[str, str] = {
    "i386": "x86",
    "i486": "x86",
    "i586": "x86",
    "i686": "x86",
    "386": "x86",
    "ia32": "x86",
    "amd64": "x86_64",
    "x86-64": "x86_64",
    "x64": "x86_64",
    "armhf": "arm",
    "armhfp": "arm",
    "armv7": "arm",
    "armv7l": "arm",
    "armv7hl": "arm",
    "arm/v7": "arm",
    "arm32v7": "arm",
    "aarch64": "arm64",
    "arm64/v8": "arm64",
    "arm64v8": "arm64",
    "armv8": "arm64",
}

_BY_NAME = {a.name: a for a in ARCHES}

# SIF codes for architectures we do not build but may read (FORMATS.md §1.5).
SIF_ARCH_NAMES: dict[str, str] = {
    "00": "unknown",
    "01": "386",
    "02": "amd64",
    "03": "arm",
    "04": "arm64",
    "05": "ppc64",
    "06": "ppc64le",
    "07": "mips",
    "08": "mipsle",
    "09": "mips64",
    "10": "mips64le",
    "11": "s390x",
    "12": "riscv64",
    "13": "loong64",
}


def arch_names() -> list[str]:
    return [a.name for a in ARCHES]


def get_arch(name: str) -> Arch:
    """Look up any spelling (case-insensitive). An unknown one lists the valid names."""
    key = name.strip().lower()
    key = _ALIASES.get(key, key)
    try:
        return _BY_NAME[key]
    except KeyError:
        valid = ", ".join(arch_names())
        raise UsageError(
            f"unknown architecture {name!r}",
            f"use one of: {valid} (aliases such as amd64, aarch64, i686, armhf also work)",
        ) from None


def is_arch(name: str) -> bool:
    key = name.strip().lower()
    return _ALIASES.get(key, key) in _BY_NAME


def host_arch() -> Arch:
    return get_arch(_pyplatform.machine())


# The 32-bit arch a 64-bit kernel usually runs without emulation (i386 on x86_64; armv7 on
# most arm64 CPUs, though some server cores drop AArch32: binfmt then still finds qemu-arm).
_COMPAT: dict[str, str] = {"x86_64": "x86", "arm64": "arm"}


def runs_natively(host: Arch, arch: Arch) -> bool:
    """True when a ``host`` kernel runs ``arch`` binaries without qemu."""
    return arch.name == host.name or _COMPAT.get(host.name) == arch.name


def arch_from_sif_code(code: str) -> str:
    """SIF code to its Go name, ``unknown`` where the code is not listed."""
    return SIF_ARCH_NAMES.get(code, "unknown")


def arch_from_oci(oci_arch: str, variant: str | None = None) -> Arch:
    for a in ARCHES:
        if a.oci == oci_arch:
            return a
    raise UsageError(f"no hepbuild architecture for OCI platform {oci_arch}/{variant or ''}")


# --- platform matching for image indexes (case G3) -----------------------------------------


@dataclass(frozen=True)
class Platform:
    os: str
    architecture: str
    variant: str | None = None

    def __str__(self) -> str:
        text = f"{self.os}/{self.architecture}"
        return f"{text}/{self.variant}" if self.variant else text


def parse_platform(text: str) -> Platform:
    """Parse ``linux/arm/v7``, ``arm64``, ``x86_64`` or ``linux/amd64`` into a Platform."""
    parts = text.strip().split("/")
    if len(parts) == 1 or (parts[0] != "linux" and len(parts) <= 2):
        arch = get_arch(text)
        return Platform("linux", arch.oci, arch.variant)
    if len(parts) not in (2, 3) or not parts[1]:
        raise UsageError(f"cannot read platform {text!r}", "write it as os/arch[/variant]")
    variant = parts[2] if len(parts) == 3 else None
    return Platform(parts[0], parts[1], variant)


def platform_for_oci(oci_arch: str | None) -> Platform | None:
    """The platform of an OCI architecture name, with the variant hepbuild writes for it."""
    if not oci_arch or oci_arch == "unknown":
        return None
    if is_arch(oci_arch):
        known = get_arch(oci_arch)
        return Platform("linux", known.oci, known.variant)
    return Platform("linux", oci_arch)


def centre_name(platform: Platform | str | None) -> str | None:
    """x86_64, arm64, ... for the arches the centre builds; the OCI name for any other."""
    if platform is None or platform == "":
        return None
    parsed = parse_platform(platform) if isinstance(platform, str) else platform
    if is_arch(parsed.architecture):
        return get_arch(parsed.architecture).name
    return parsed.architecture


def _default_variant(architecture: str) -> str | None:
    return {"arm64": "v8", "arm": "v7"}.get(architecture)


def platform_matches(want: Platform, have: Platform) -> bool:
    """Exact matching of architecture, with the usual default variants filled in.

    arm64 without a variant means v8, arm without a variant means v7. 386 never matches
    amd64, and arm/v5 never matches v6 or v7: an emulated or compatible fallback is the
    caller's decision, not ours.
    """
    if want.os != have.os or want.architecture != have.architecture:
        return False
    want_v = want.variant or _default_variant(want.architecture)
    have_v = have.variant or _default_variant(have.architecture)
    return want_v == have_v


def pick_platform(candidates: Sequence[Platform], want: Platform) -> int:
    """Index of the entry matching ``want``. Raises UsageError listing what is there."""
    for index, have in enumerate(candidates):
        if platform_matches(want, have):
            return index
    there = ", ".join(str(p) for p in candidates) or "nothing"
    raise UsageError(
        f"no entry for platform {want} in the image index (it has: {there})",
        "choose one of those with --arch",
    )


def describe(arches: Iterable[Arch]) -> str:
    return ", ".join(a.name for a in arches)
