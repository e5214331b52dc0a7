"""binfmt_misc state per architecture, read from a fake /proc/sys/fs/binfmt_misc."""

from __future__ import annotations

from pathlib import Path

from hepbuild.build.binfmt import binfmt_state, parse_entry
from hepbuild.platforms import get_arch

ENTRY = """enabled
interpreter /usr/libexec/qemu-binfmt/aarch64-binfmt-P
flags: PF
offset 0
magic 7f454c460201010000000000000000000200b700
"""

HOST = get_arch("x86_64")


def _fake_dir(tmp_path: Path, entry: str | None, mounted: bool = True) -> Path:
    if mounted:
        (tmp_path / "status").write_text("enabled\n")
    if entry is not None:
        (tmp_path / "qemu-aarch64").write_text(entry)
    return tmp_path


def test_parse_entry() -> None:
    assert parse_entry(ENTRY) == (True, "PF", "/usr/libexec/qemu-binfmt/aarch64-binfmt-P")


def test_a_good_entry_is_usable(tmp_path: Path) -> None:
    state = binfmt_state(get_arch("arm64"), HOST, _fake_dir(tmp_path, ENTRY))
    assert state.usable and state.problem is None and state.fix is None


def test_missing_f_flag_is_a_problem_with_a_fix(tmp_path: Path) -> None:
    state = binfmt_state(get_arch("arm64"), HOST, _fake_dir(tmp_path, ENTRY.replace("PF", "P")))
    assert not state.usable
    assert "F (fix binary)" in (state.problem or "")
    assert "qemu-user-static" in (state.fix or "")


def test_disabled_entry(tmp_path: Path) -> None:
    state = binfmt_state(get_arch("arm64"), HOST,
                         _fake_dir(tmp_path, ENTRY.replace("enabled", "disabled", 1)))
    assert state.problem == "binfmt_misc entry qemu-aarch64 is disabled"
    assert state.fix == f"echo 1 > {Path('/proc/sys/fs/binfmt_misc/qemu-aarch64')}"


def test_missing_entry_and_unmounted(tmp_path: Path) -> None:
    state = binfmt_state(get_arch("arm64"), HOST, _fake_dir(tmp_path, None))
    assert state.problem == "no binfmt_misc entry qemu-aarch64"
    unmounted = binfmt_state(get_arch("arm64"), HOST, _fake_dir(tmp_path / "x", None, False))
    assert unmounted.fix and unmounted.fix.startswith("mount -t binfmt_misc")


def test_i386_is_native_on_x86_64_without_any_entry(tmp_path: Path) -> None:
    state = binfmt_state(get_arch("i686"), HOST, _fake_dir(tmp_path, None))
    assert state.native and state.usable
