"""Which bases a profile bootstraps, where they go, and the mmdebstrap command line."""

from __future__ import annotations

from pathlib import Path

import pytest

from hepbuild.build.bases import base_targets, mmdebstrap_argv
from hepbuild.config.model import Base, Bootstrap, Profile, Registry
from hepbuild.errors import ConfigError
from hepbuild.platforms import get_arch

BOOT = Bootstrap("mmdebstrap", suite="bookworm", variant="minbase",
                 mirror="http://deb.debian.org/debian", packages=("ca-certificates", "bash"))
DEBIAN = Base("debian12", "apt", ("x86_64", "arm64", "arm"),
              {"x86_64": "harbor.example/debian:12", "arm64": "harbor.example/debian:12-arm64",
               "arm": "harbor.example/debian:12-armhf"}, bootstrap=BOOT, line=12)
EL9 = Base("el9", "yum", ("x86_64",), {"x86_64": "harbor.example/alma:9"})
LOCAL = Profile("local", Registry("local", "127.0.0.1:5000", insecure=True),
                bases={"debian12": {"arm64": "127.0.0.1:5000/hepbuild-bases/debian12:arm64"}},
                bootstrap=True, bases_enabled=("debian12",))


def test_targets_follow_the_profile_and_its_overrides() -> None:
    targets = base_targets([EL9, DEBIAN], LOCAL)
    assert [(t.id, t.ref) for t in targets] == [
        ("debian12-x86_64", "harbor.example/debian:12"),
        ("debian12-arm64", "127.0.0.1:5000/hepbuild-bases/debian12:arm64"),
        ("debian12-arm", "harbor.example/debian:12-armhf"),
    ]


def test_arch_filter_accepts_any_spelling() -> None:
    assert [t.id for t in base_targets([DEBIAN], LOCAL, ["aarch64"])] == ["debian12-arm64"]


def test_a_base_without_an_image_for_an_arch_is_a_config_problem() -> None:
    broken = Base("debian12", "apt", ("x86",), {}, bootstrap=BOOT, line=40)
    with pytest.raises(ConfigError) as info:
        base_targets([broken], LOCAL)
    [problem] = info.value.problems
    assert (problem.file, problem.line) == ("matrix.yaml", 40)
    assert "no image for x86" in problem.message


def test_mmdebstrap_argv_for_a_foreign_arch() -> None:
    argv = mmdebstrap_argv(BOOT, get_arch("arm64"), Path("/tmp/r.tar"))
    assert argv == ["mmdebstrap", "--variant=minbase", "--architectures=arm64", "--format=tar",
                    "--include=bash,ca-certificates", "bookworm", "/tmp/r.tar",
                    "http://deb.debian.org/debian"]
