"""Architecture spellings and index platform matching (case G3)."""

from __future__ import annotations

import pytest

from hepbuild.errors import UsageError
from hepbuild.platforms import (
    Platform,
    arch_names,
    get_arch,
    parse_platform,
    pick_platform,
    platform_matches,
)


@pytest.mark.parametrize(
    ("spelling", "name"),
    [
        ("x86", "x86"),
        ("i686", "x86"),
        ("386", "x86"),
        ("x86_64", "x86_64"),
        ("AMD64", "x86_64"),
        ("ARM", "arm"),
        ("armhf", "arm"),
        ("armv7l", "arm"),
        ("ARM64", "arm64"),
        ("aarch64", "arm64"),
        ("arm64/v8", "arm64"),
    ],
)
def test_every_spelling_maps_to_the_centre_name(spelling: str, name: str) -> None:
    assert get_arch(spelling).name == name


def test_each_arch_has_all_its_spellings() -> None:
    table = {
        a: (get_arch(a).platform, get_arch(a).rpm, get_arch(a).deb, get_arch(a).qemu)
        for a in arch_names()
    }
    assert table == {
        "x86": ("linux/386", "i686", "i386", "i386"),
        "x86_64": ("linux/amd64", "x86_64", "amd64", "x86_64"),
        "arm": ("linux/arm/v7", "armhfp", "armhf", "arm"),
        "arm64": ("linux/arm64/v8", "aarch64", "arm64", "aarch64"),
    }


def test_unknown_arch_lists_the_valid_names() -> None:
    with pytest.raises(UsageError) as err:
        get_arch("sparc")
    assert "sparc" in err.value.message
    assert err.value.hint is not None
    for name in arch_names():
        assert name in err.value.hint


G3_INDEX = [
    Platform("linux", "amd64"),
    Platform("linux", "386"),
    Platform("linux", "arm", "v5"),
    Platform("linux", "arm", "v6"),
    Platform("linux", "arm", "v7"),
    Platform("linux", "arm64", "v8"),
]


@pytest.mark.parametrize("order", ["forward", "reverse"])
@pytest.mark.parametrize(
    ("want", "expected"),
    [
        ("linux/arm/v6", Platform("linux", "arm", "v6")),
        ("linux/arm/v7", Platform("linux", "arm", "v7")),
        ("linux/arm64", Platform("linux", "arm64", "v8")),
        ("arm64", Platform("linux", "arm64", "v8")),
        ("linux/386", Platform("linux", "386")),
        ("x86_64", Platform("linux", "amd64")),
    ],
)
def test_g3_picks_the_exact_variant(order: str, want: str, expected: Platform) -> None:
    index = G3_INDEX if order == "forward" else list(reversed(G3_INDEX))
    assert index[pick_platform(index, parse_platform(want))] == expected


def test_g3_386_never_matches_amd64() -> None:
    assert not platform_matches(parse_platform("linux/386"), Platform("linux", "amd64"))
    with pytest.raises(UsageError):
        pick_platform([Platform("linux", "amd64")], parse_platform("linux/386"))


def test_g3_arm_v5_is_an_error_when_only_v6_and_v7_exist() -> None:
    index = [Platform("linux", "arm", "v6"), Platform("linux", "arm", "v7")]
    with pytest.raises(UsageError) as err:
        pick_platform(index, parse_platform("linux/arm/v5"))
    assert "linux/arm/v6" in err.value.message and "linux/arm/v7" in err.value.message


def test_written_platforms_carry_arm_variants() -> None:
    assert get_arch("arm").variant == "v7"
    assert get_arch("arm64").variant == "v8"
    assert get_arch("x86_64").variant is None


@pytest.mark.parametrize(
    ("host", "arch", "native"),
    [("x86_64", "x86_64", True), ("x86_64", "x86", True), ("x86_64", "arm64", False),
     ("arm64", "arm", True), ("arm64", "x86_64", False), ("x86", "x86_64", False)],
)
def test_which_arches_a_host_runs_without_qemu(host: str, arch: str, native: bool) -> None:
    from hepbuild.platforms import runs_natively

    assert runs_natively(get_arch(host), get_arch(arch)) is native


@pytest.mark.parametrize(
    ("given", "name"),
    [("linux/amd64", "x86_64"), ("linux/arm/v7", "arm"), ("linux/arm64/v8", "arm64"),
     (Platform("linux", "386"), "x86"), ("linux/ppc64le", "ppc64le"), (None, None)],
)
def test_centre_name_of_a_platform(given: Platform | str | None, name: str | None) -> None:
    from hepbuild.platforms import centre_name

    assert centre_name(given) == name


def test_platform_for_an_oci_arch_carries_our_variant() -> None:
    from hepbuild.platforms import platform_for_oci

    assert platform_for_oci("arm64") == Platform("linux", "arm64", "v8")
    assert platform_for_oci("s390x") == Platform("linux", "s390x")
    assert platform_for_oci("unknown") is None
