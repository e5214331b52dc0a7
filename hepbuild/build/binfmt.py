"""What binfmt_misc says about running foreign binaries, per architecture.

buildah runs the RUN steps of an arm64 build on an x86_64 host through qemu-user, which the
kernel starts via binfmt_misc. The F ("fix binary") flag matters: without it the kernel
looks for the interpreter inside the image's chroot, where it does not exist.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from hepbuild.platforms import ARCHES, Arch, runs_natively

BINFMT_DIR = Path("/proc/sys/fs/binfmt_misc")

@dataclass(frozen=True)
class BinfmtState:
    arch: str
    native: bool  # runs without qemu on this host
    mounted: bool
    present: bool
    enabled: bool
    fix_binary: bool  # the F flag
    interpreter: str | None

    @property
    def usable(self) -> bool:
        return self.native or (self.mounted and self.present and self.enabled and self.fix_binary)

    @property
    def problem(self) -> str | None:
        if self.usable:
            return None
        if not self.mounted:
            return "binfmt_misc is not mounted"
        if not self.present:
            return f"no binfmt_misc entry qemu-{_qemu_name(self.arch)}"
        if not self.enabled:
            return f"binfmt_misc entry qemu-{_qemu_name(self.arch)} is disabled"
        return f"binfmt_misc entry qemu-{_qemu_name(self.arch)} lacks the F (fix binary) flag"

    @property
    def fix(self) -> str | None:
        entry = BINFMT_DIR / f"qemu-{_qemu_name(self.arch)}"
        if self.usable:
            return None
        if not self.mounted:
            return f"mount -t binfmt_misc binfmt_misc {BINFMT_DIR}"
        if not self.present:
            return "apt-get install qemu-user-static binfmt-support  (or run scripts/setup)"
        if not self.enabled:
            return f"echo 1 > {entry}"
        return (f"echo -1 > {entry} && apt-get install --reinstall qemu-user-static"
                "  (Debian's package registers with the F flag)")


def _qemu_name(arch_name: str) -> str:
    return next(a.qemu for a in ARCHES if a.name == arch_name)


def parse_entry(text: str) -> tuple[bool, str, str | None]:
    """(enabled, flags, interpreter) from the text of /proc/sys/fs/binfmt_misc/<entry>."""
    lines = text.splitlines()
    enabled = bool(lines) and lines[0].strip() == "enabled"
    flags, interpreter = "", None
    for line in lines[1:]:
        key, _, value = line.partition(" ")
        if key == "flags:":
            flags = value.strip()
        elif key == "interpreter":
            interpreter = value.strip()
    return enabled, flags, interpreter


def binfmt_state(arch: Arch, host: Arch, directory: Path = BINFMT_DIR) -> BinfmtState:
    native = runs_natively(host, arch)
    mounted = (directory / "status").exists()
    entry = directory / f"qemu-{arch.qemu}"
    if not entry.exists():
        return BinfmtState(arch.name, native, mounted, False, False, False, None)
    enabled, flags, interpreter = parse_entry(entry.read_text(encoding="utf-8", errors="replace"))
    return BinfmtState(arch.name, native, mounted, True, enabled, "F" in flags, interpreter)
