"""``hepbuild doctor --json`` on this machine: real tool versions and binfmt_misc state."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

pytestmark = [pytest.mark.buildah, pytest.mark.qemu]


def test_doctor_reports_versions_and_a_usable_arm64_binfmt_entry() -> None:
    proc = subprocess.run([sys.executable, "-m", "hepbuild", "doctor", "--json"],
                          capture_output=True, text=True, timeout=120)
    report = json.loads(proc.stdout)
    checks = {(c["kind"], c["name"]): c for c in report["checks"]}

    assert proc.returncode == (0 if report["ok"] else 1)
    buildah = checks[("tool", "buildah")]
    assert buildah["ok"] and buildah["found"].split()[0].count(".") >= 1
    arm64 = checks[("binfmt", "arm64")]
    assert arm64["ok"] and arm64["details"] == {"native": False, "mounted": True,
                                                "present": True, "enabled": True,
                                                "fix_binary": True}
    assert checks[("binfmt", report["host"])]["details"]["native"] is True
    assert checks[("kernel", "vsyscall for sl5/sl6")]["required"] is False
