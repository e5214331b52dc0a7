"""What ``hepbuild doctor`` checks: tools and versions, binfmt_misc per arch, vsyscall.

Each check says whether it is required, what was found and the command that fixes it.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from hepbuild import tools
from hepbuild.build.binfmt import BINFMT_DIR, binfmt_state
from hepbuild.errors import ToolMissing
from hepbuild.platforms import ARCHES, Arch

# (tool, required, version arguments). Version flags differ between tools.
TOOLS: tuple[tuple[str, bool, tuple[str, ...]], ...] = (
    ("buildah", True, ("--version",)),
    ("skopeo", True, ("--version",)),
    ("umoci", True, ("--version",)),
    ("siftool", False, ("version",)),
    ("mksquashfs", True, ("-version",)),
    ("unsquashfs", True, ("-version",)),
    ("tar2sqfs", False, ("--version",)),
    ("mmdebstrap", False, ("--version",)),
    ("arch-test", False, ("-h",)),  # mmdebstrap needs it for foreign architectures
    ("docker-registry", False, ("--version",)),
)

OLD_GLIBC_BASES = ("sl5", "sl6")


@dataclass(frozen=True)
class Check:
    kind: str  # tool, binfmt, kernel
    name: str
    ok: bool
    required: bool
    found: str  # version, path or state
    fix: str | None = None
    details: dict[str, bool] | None = None  # binfmt: mounted, present, enabled, fix_binary

    @property
    def status(self) -> str:
        if self.ok:
            return "ok"
        return "MISSING" if self.required else "warning"


def needs_emulation(arch: Arch, host: Arch) -> bool:
    """Whether doctor fails without qemu for ``arch``: the centre's matrix always has cells
    for both 64-bit arches, so the other 64-bit one is required; 32-bit ones only warn."""
    return arch.bits == 64 and arch != host


def qemu_tools(host: Arch) -> tuple[tuple[str, bool, tuple[str, ...]], ...]:
    """qemu-user-static for every arch but the host's, spelled as platforms.py knows it."""
    return tuple((f"qemu-{arch.qemu}-static", needs_emulation(arch, host), ("--version",))
                 for arch in ARCHES if arch != host)


def tool_checks(host: Arch) -> list[Check]:
    checks = []
    for name, required, version_args in TOOLS + qemu_tools(host):
        try:
            tool = tools.find_tool(name, version_args=version_args)
        except ToolMissing as exc:
            checks.append(Check("tool", name, False, required, "not found", exc.hint))
            continue
        checks.append(Check("tool", name, True, required, f"{tool.version or '?'} ({tool.path})"))
    return checks


def binfmt_checks(host: Arch, directory: Path = BINFMT_DIR) -> list[Check]:
    """One check per architecture; only foreign ones need a qemu entry."""
    checks = []
    for arch in ARCHES:
        state = binfmt_state(arch, host, directory)
        if state.native:
            found = "native on this host"
        elif state.usable:
            found = f"qemu via binfmt_misc: mounted, enabled, F flag ({state.interpreter})"
        else:
            found = state.problem or "?"
        required = needs_emulation(arch, host)
        details = {"native": state.native, "mounted": state.mounted, "present": state.present,
                   "enabled": state.enabled, "fix_binary": state.fix_binary}
        checks.append(Check("binfmt", arch.name, state.usable, required, found, state.fix,
                            details))
    return checks


def vsyscall_check(cmdline: str) -> Check:
    """SL5/SL6 glibc calls the legacy vsyscall page; without emulate their binaries crash."""
    options = dict(_option(word) for word in cmdline.split())
    mode = options.get("vsyscall")
    ok = mode == "emulate"
    found = f"vsyscall={mode}" if mode else "vsyscall not set (kernel default: xonly or none)"
    fix = None if ok else (
        f"{', '.join(OLD_GLIBC_BASES)} images will crash here; add vsyscall=emulate to the kernel "
        "command line (GRUB_CMDLINE_LINUX in /etc/default/grub, update-grub, reboot) "
        "or build those bases on a host that has it"
    )
    return Check("kernel", "vsyscall for sl5/sl6", ok, False, found, fix)


def _option(word: str) -> tuple[str, str]:
    key, _, value = word.partition("=")
    return key, value


def read_cmdline(path: Path = Path("/proc/cmdline")) -> str:
    try:
        return path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return ""


def all_checks(host: Arch) -> list[Check]:
    return tool_checks(host) + binfmt_checks(host) + [vsyscall_check(read_cmdline())]


def missing_required(checks: list[Check]) -> list[Check]:
    return [c for c in checks if c.required and not c.ok]
