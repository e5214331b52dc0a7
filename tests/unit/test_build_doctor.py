"""doctor's kernel and binfmt checks, and that its report names the fixes."""

from __future__ import annotations

from pathlib import Path

from hepbuild.build import doctor
from hepbuild.platforms import get_arch


def test_vsyscall_emulate_is_fine() -> None:
    check = doctor.vsyscall_check("quiet vsyscall=emulate root=/dev/sda1")
    assert check.ok and check.fix is None


def test_without_vsyscall_emulate_sl5_sl6_are_warned_about() -> None:
    check = doctor.vsyscall_check("console=ttyS0 quiet")
    assert not check.ok and not check.required
    assert "sl5, sl6" in (check.fix or "") and "vsyscall=emulate" in (check.fix or "")
    assert doctor.vsyscall_check("vsyscall=none").found == "vsyscall=none"


def test_missing_arm64_binfmt_is_required_and_fails(tmp_path: Path) -> None:
    (tmp_path / "status").write_text("enabled\n")
    checks = {c.name: c for c in doctor.binfmt_checks(get_arch("x86_64"), tmp_path)}
    assert checks["x86"].ok and checks["x86_64"].ok
    assert not checks["arm64"].ok and checks["arm64"].required
    assert checks["arm64"].details == {"native": False, "mounted": True, "present": False,
                                       "enabled": False, "fix_binary": False}
    assert doctor.missing_required(list(checks.values())) == [checks["arm64"]]


def test_required_qemu_follows_the_host_not_a_fixed_arch(tmp_path: Path) -> None:
    (tmp_path / "status").write_text("enabled\n")
    on_arm = {c.name: c for c in doctor.binfmt_checks(get_arch("arm64"), tmp_path)}
    assert on_arm["arm64"].ok and on_arm["arm"].ok
    assert on_arm["x86_64"].required and not on_arm["x86"].required
    assert [(name, required) for name, required, _ in doctor.qemu_tools(get_arch("x86_64"))] == [
        ("qemu-i386-static", False), ("qemu-arm-static", False),
        ("qemu-aarch64-static", True)]


HEPBUILD = Path(__file__).resolve().parents[2] / "hepbuild"
# Files of this area that once carried their own atomic writer, digest code or arch names.
ONE_PLACE = ("ci/pipeline.py", "build/junit.py", "build/doctor.py", "commands/build.py",
             "commands/ci.py", "release/publish.py", "release/store.py", "release/records.py",
             "release/versions.py")


def test_atomic_writes_digests_and_arch_names_come_from_their_one_place() -> None:
    for name in ONE_PLACE:
        text = (HEPBUILD / name).read_text()
        for private in ("mkstemp", "os.replace", "hashlib", "HOST_ARCH", '"x86_64"', '"arm64"',
                        '"amd64"', '"aarch64"'):
            assert private not in text, f"{name} has {private}; use files.py / platforms.py"
