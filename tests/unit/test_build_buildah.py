"""buildah argv building and the storage-driver / isolation choice, without running buildah."""

from __future__ import annotations

from pathlib import Path

import pytest

from hepbuild.build import buildah as bd
from hepbuild.errors import UsageError
from hepbuild.platforms import get_arch

SETTINGS = bd.BuildahSettings("overlay", "chroot")


def _isolation(env: dict[str, str], flag: str | None = None, *, euid: int = 0,
               markers: tuple[str, ...] = (), oci: bool = True) -> str:
    choice, _why = bd.pick_isolation(env, flag, euid=euid, marker_exists=lambda p: p in markers,
                                     oci_runtime_works=lambda: oci)
    return choice


def test_isolation_is_oci_on_a_plain_root_host_with_crun() -> None:
    assert _isolation({}) == "oci"


def test_isolation_is_chroot_without_a_working_runtime() -> None:
    assert _isolation({}, oci=False) == "chroot"


def test_isolation_is_chroot_inside_a_container() -> None:
    assert _isolation({}, markers=("/.dockerenv",)) == "chroot"
    assert _isolation({}, markers=("/run/.containerenv",)) == "chroot"


def test_isolation_is_chroot_in_gitlab_ci() -> None:
    assert _isolation({"GITLAB_CI": "true"}) == "chroot"


def test_isolation_is_chroot_when_rootless() -> None:
    assert _isolation({}, euid=1000) == "chroot"


def test_isolation_flag_beats_environment_beats_probe() -> None:
    env = {bd.ENV_ISOLATION: "oci", "GITLAB_CI": "true"}
    assert _isolation(env) == "oci"
    assert _isolation(env, "chroot") == "chroot"


def test_unknown_isolation_names_the_source_and_the_choices() -> None:
    with pytest.raises(UsageError) as info:
        _isolation({bd.ENV_ISOLATION: "jail"})
    assert bd.ENV_ISOLATION in info.value.message
    assert "chroot, oci, rootless" in (info.value.hint or "")


def test_storage_driver_overlay_when_it_works_else_vfs() -> None:
    assert bd.pick_storage_driver({}, None, overlay_works=lambda: True)[0] == "overlay"
    assert bd.pick_storage_driver({}, None, overlay_works=lambda: False)[0] == "vfs"


def test_storage_driver_override_does_not_probe() -> None:
    def must_not_probe() -> bool:
        raise AssertionError("probed although overridden")

    env = {bd.ENV_STORAGE_DRIVER: "vfs"}
    assert bd.pick_storage_driver(env, None, overlay_works=must_not_probe)[0] == "vfs"
    assert bd.pick_storage_driver(env, "overlay", overlay_works=must_not_probe)[0] == "overlay"


def test_build_argv_for_arm64_passes_arch_variant_isolation_and_tag() -> None:
    argv = bd.build_argv(SETTINGS, dockerfile=Path("/r/Dockerfile"), context=Path("/r/ctx"),
                         tag="localhost/hepbuild-tmp/x:build", arch=get_arch("aarch64"),
                         labels={"b": "2", "a": "1"})
    assert argv[:4] == ["buildah", "--storage-driver", "overlay", "build"]
    assert argv[argv.index("--isolation") + 1] == "chroot"
    assert argv[argv.index("--arch") + 1] == "arm64"
    assert argv[argv.index("--variant") + 1] == "v8"
    assert argv[argv.index("-t") + 1] == "localhost/hepbuild-tmp/x:build"
    assert argv[argv.index("-f") + 1] == "/r/Dockerfile"
    assert argv[-1] == "/r/ctx"
    labels = [argv[i + 1] for i, a in enumerate(argv) if a == "--label"]
    assert labels == ["a=1", "b=2"]
    assert "--pull=false" in argv


def test_build_argv_for_x86_64_has_no_variant() -> None:
    argv = bd.build_argv(SETTINGS, dockerfile=Path("D"), context=Path("."), tag="t",
                         arch=get_arch("x86_64"))
    assert argv[argv.index("--arch") + 1] == "amd64"
    assert "--variant" not in argv


def test_credentials_only_as_authfile_never_creds() -> None:
    settings = SETTINGS.with_registry(authfile="/run/auth.json", tls_verify=False)
    argvs = [
        bd.build_argv(settings, dockerfile=Path("D"), context=Path("."), tag="t",
                      arch=get_arch("arm64")),
        bd.push_argv(settings, "src", "127.0.0.1:5000/a/b:1", Path("/tmp/d")),
        bd.from_argv(settings, "img", "ctr", pull="missing"),
    ]
    for argv in argvs:
        assert not any(a.startswith("--creds") for a in argv)
        assert argv[argv.index("--authfile") + 1] == "/run/auth.json"
        assert "--tls-verify=false" in argv


def test_push_argv_reads_the_digest_from_a_file() -> None:
    argv = bd.push_argv(SETTINGS, "localhost/x:1", "reg:5000/x:1", Path("/tmp/dig"))
    assert argv[-2:] == ["localhost/x:1", "docker://reg:5000/x:1"]
    assert argv[argv.index("--digestfile") + 1] == "/tmp/dig"
    assert "--tls-verify=false" not in argv


def test_run_argv_uses_the_isolation_and_a_shell() -> None:
    argv = bd.run_argv(SETTINGS, "ctr", "test -d /cvmfs")
    assert argv[argv.index("--isolation") + 1] == "chroot"
    assert argv[-5:] == ["ctr", "--", "/bin/sh", "-c", "test -d /cvmfs"]


def test_private_storage_root_comes_first() -> None:
    settings = bd.BuildahSettings("vfs", "chroot", storage_root="/tmp/store")
    expected = ["buildah", "--root", "/tmp/store", "--storage-driver", "vfs"]
    assert bd.global_args(settings) == expected


def test_image_facts_sum_layers_and_read_the_platform() -> None:
    manifest = '{"layers": [{"size": 100}, {"size": 23}]}'
    facts = bd.image_facts({
        "Manifest": manifest, "FromImageID": "abc", "FromImageDigest": "sha256:1",
        "OCIv1": {"os": "linux", "architecture": "arm64", "variant": "v8"},
    })
    assert facts == bd.ImageFacts("abc", "sha256:1", 123, "linux/arm64/v8")
