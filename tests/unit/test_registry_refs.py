"""References that name no repository, bad ports and brackets, push's checks that come before
any upload, snake_case JSON rows, and a missing REGISTRY_AUTH_FILE (no registry needed).

Every CLI case points at 127.0.0.1 port 1, where nothing listens: a check that came too late
would show up as "cannot reach", not as the message asserted here.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from hepbuild.ci import keys
from hepbuild.cli import main
from hepbuild.errors import RegistryError, UsageError
from hepbuild.image import sif
from hepbuild.image.transports import ImageRef, parse_ref, repository_of
from hepbuild.platforms import get_arch, host_arch
from hepbuild.registry import auth
from hepbuild.registry.client import RegistryClient
from hepbuild.registry.reference import DEFAULT_HOST, parse_reference
from hepbuild.registry.result import PullResult, PushResult

NOWHERE = "127.0.0.1:1"


def _cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    captured = capsys.readouterr()
    assert "Traceback" not in captured.err
    return code, captured.out, captured.err


def _sif(path: Path, arch: str) -> Path:
    payload = path.with_suffix(".payload")
    payload.write_bytes(os.urandom(4096))
    sif.SifWriter().write(path, [sif.primary_squashfs(payload, get_arch(arch).sif)])
    return path


# -- finding 1: a host without a repository is never read as a Docker Hub name ---------------


@pytest.mark.parametrize(
    ("text", "named"),
    [
        ("docker://127.0.0.1:5099", "127.0.0.1:5099"),
        ("docker://127.0.0.1:5099/", "127.0.0.1:5099"),
        ("oras://harbor.example", "harbor.example"),
        ("localhost:5000", "localhost:5000"),
        ("docker://[::1]:5000", "[::1]:5000"),
    ],
)
def test_a_registry_without_a_repository_is_refused(text: str, named: str) -> None:
    with pytest.raises(UsageError, match="but no repository") as caught:
        parse_reference(text)
    assert named in caught.value.message


@pytest.mark.parametrize("text", ["docker://", "oras://", "docker:////"])
def test_an_empty_reference_is_refused(text: str) -> None:
    with pytest.raises(UsageError, match="names no image"):
        parse_reference(text)


@pytest.mark.parametrize(("text", "repository", "tag"), [
    ("ubuntu:22.04", "library/ubuntu", "22.04"),
    ("python:3", "library/python", "3"),  # an all-digit tag is a tag, not a port
    ("almalinux/9-base:9", "almalinux/9-base", "9"),
])
def test_docker_hub_short_names_still_read_as_docker_hub(text: str, repository: str,
                                                         tag: str) -> None:
    ref = parse_reference(text)
    assert (ref.host, ref.repository, ref.tag) == (DEFAULT_HOST, repository, tag)


def test_cli_push_to_a_bare_host_port_names_it(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    code, _, err = _cli(
        capsys, "push", "--insecure", f"oci:{tmp_path}", "docker://127.0.0.1:5099"
    )
    assert code == 2
    assert "'docker://127.0.0.1:5099' names the registry 127.0.0.1:5099 but no repository" in err
    assert "library/127.0.0.1" not in err


def test_insecure_is_refused_for_docker_hub(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(UsageError, match=f"refused for {DEFAULT_HOST}"):
        RegistryClient(DEFAULT_HOST, insecure=True)
    code, _, err = _cli(capsys, "push", "--insecure", "oci:/nonexistent", "docker://hep/x:1")
    assert code == 2 and f"--insecure (plain HTTP) is refused for {DEFAULT_HOST}" in err


def test_insecure_is_refused_for_a_docker_hub_source(
    capsys: pytest.CaptureFixture[str],
) -> None:
    code, _, err = _cli(
        capsys, "push", "--insecure", "docker://ubuntu:22.04", f"docker://{NOWHERE}/hep/x:1"
    )
    assert code == 2 and f"refused for {DEFAULT_HOST}" in err


# -- finding 2: ports and IPv6 brackets -------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("docker://127.0.0.1:99999/hep/x:1", "invalid port '99999'"),
        ("docker://127.0.0.1:0/hep/x:1", "invalid port '0'"),
        ("docker://127.0.0.1:abc/hep/x:1", "invalid port 'abc'"),
        ("docker://[::1/hep/x", "invalid IPv6 address '[::1'"),
        ("docker://[zz]:5000/hep/x", "invalid IPv6 address"),
        ("docker://:5000/hep/x", "invalid registry host ':5000'"),
    ],
)
def test_bad_hosts_are_usage_errors(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, text: str, message: str
) -> None:
    with pytest.raises(UsageError, match=message.replace("[", r"\[")):
        parse_reference(text)
    code, _, err = _cli(capsys, "push", "--insecure", f"oci:{tmp_path}", text)
    assert code == 2 and message in err


def test_ipv6_with_port_is_read() -> None:
    ref = parse_reference("docker://[::1]:5000/hep/x:1")
    assert (ref.host, ref.repository, ref.tag) == ("[::1]:5000", "hep/x", "1")


def test_cli_pull_with_a_bad_port_is_a_usage_error(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    code, _, err = _cli(capsys, "pull", "oras://127.0.0.1:65536/hep/s:1", str(tmp_path / "a"))
    assert code == 2 and "invalid port '65536'" in err


# -- finding 6 and 7: push names the file, and checks the SIF set before uploading ------------


def test_push_of_a_missing_file_says_so(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    missing = tmp_path / "nonexist.sif"
    for source in (str(missing), f"sif:{missing}"):
        code, _, err = _cli(capsys, "push", "--insecure", source, f"oras://{NOWHERE}/hep/s:1")
        assert code == 2 and f"{missing}: file not found" in err
        assert "docker://" not in err.splitlines()[0]


def test_push_of_a_file_that_is_no_sif_says_so(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    text = tmp_path / "passwd"
    text.write_text("root:x:0:0:root:/root:/bin/sh\n")
    code, _, err = _cli(capsys, "push", "--insecure", str(text), f"oras://{NOWHERE}/hep/s:1")
    assert code == 2 and f"{text} is not a SIF (no SIF magic" in err


def test_a_missing_bare_path_to_docker_is_file_not_found(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    missing = tmp_path / "nothere"
    code, _, err = _cli(capsys, "push", "--insecure", str(missing), f"docker://{NOWHERE}/hep/x:1")
    assert code == 2 and f"{missing}: file not found" in err


def test_two_sifs_for_one_arch_fail_before_any_upload(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    first = _sif(tmp_path / "a.sif", "x86_64")
    second = _sif(tmp_path / "b.sif", "x86_64")
    code, _, err = _cli(
        capsys, "push", "--insecure", str(first), str(second), f"oras://{NOWHERE}/hep/s:1"
    )
    assert code == 2, err
    assert f"two SIFs for x86_64 given: {first} and {second}" in err
    assert "cannot reach" not in err


# -- findings 11 and 15: JSON rows ------------------------------------------------------------


def test_push_rows_use_snake_case_keys_and_the_centre_arch() -> None:
    arm = get_arch("arm")
    result = PushResult("r", "sha256:" + "0" * 64, "m", 10, 4, platform=arm.platform)
    assert result.row() == {
        "reference": "r", "arch": "arm", "digest": "sha256:" + "0" * 64, "size": 10,
        "bytes_uploaded": 4,
    }
    assert all(key.isidentifier() for key in result.row())
    assert PushResult("r", "d", "m", 1, 0).arch is None


def test_pull_result_gives_the_centre_arch_beside_the_platform() -> None:
    x86_64 = get_arch("x86_64")
    result = PullResult("r", "d", "l", 1, "/f", x86_64.platform)
    assert (result.arch, result.platform) == ("x86_64", x86_64.platform)
    assert result.row()["arch"] == "x86_64"


# -- finding 16: one parser for registry references --------------------------------------------


def test_transports_refuse_what_the_reference_parser_refuses() -> None:
    with pytest.raises(UsageError, match="but no repository"):
        parse_ref("docker://127.0.0.1:5099")
    with pytest.raises(UsageError, match="invalid port"):
        parse_ref("docker://127.0.0.1:99999/hep/x:1")


def test_oci_folder_with_a_colon_in_its_name(tmp_path: Path) -> None:
    folder = tmp_path / "img:v1"
    folder.mkdir()
    assert parse_ref(f"oci:{folder}") == ImageRef("oci", str(folder))
    assert parse_ref(f"oci:{folder}:t") == ImageRef("oci", str(folder), "t")


def test_split_ref_and_repository_of_read_through_parse_reference() -> None:
    with pytest.raises(RegistryError, match="not a host/repository:tag"):
        keys.split_ref("127.0.0.1:99999/site/base:1")
    with pytest.raises(RegistryError, match="not a host/repository:tag"):
        keys.split_ref("127.0.0.1:5000/site/base@sha256:" + "0" * 64)
    assert repository_of("[::1]:5000/hep/app:1.0") == "[::1]:5000/hep/app"


# -- finding 9d: a REGISTRY_AUTH_FILE that is not there ----------------------------------------


def test_a_missing_registry_auth_file_is_warned_about(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    missing = tmp_path / "nonexist.json"
    env = {"HOME": str(tmp_path), "REGISTRY_AUTH_FILE": str(missing)}
    assert auth.load_credentials("127.0.0.1:5000", env) is None
    assert f"REGISTRY_AUTH_FILE={missing} is not a file" in capsys.readouterr().err
    present = tmp_path / "auth.json"
    present.write_text('{"auths": {}}')
    env["REGISTRY_AUTH_FILE"] = str(present)
    assert auth.load_credentials("127.0.0.1:5000", env) is None
    assert capsys.readouterr().err == ""


def test_host_arch_platform_has_a_centre_name() -> None:
    # The arch a pull of a single-arch SIF reports comes back through these names.
    assert PullResult("r", "d", "l", 1, "/f", host_arch().platform).arch == host_arch().name


def test_a_cell_id_source_names_its_built_image_or_its_sif(tmp_path: Path) -> None:
    import shutil

    from hepbuild.commands.push import resolve_cell_sources

    root = tmp_path / "project"
    shutil.copytree(Path(__file__).parent.parent / "data" / "recipes" / "minimal", root)
    cell = "demo/hello-debian12-x86_64"
    assert resolve_cell_sources([cell], "docker", root) == [
        "containers-storage:localhost/hepbuild/demo/hello:1.0-debian12-x86_64"]
    with pytest.raises(UsageError) as missing:
        resolve_cell_sources([cell], "oras", root)
    assert "cell demo/hello-debian12-x86_64 has no SIF" in missing.value.message
    sif = root / "dist" / cell / "hello.sif"
    sif.parent.mkdir(parents=True)
    sif.write_bytes(b"placeholder")
    assert resolve_cell_sources([cell], "oras", root) == [str(sif)]
    # Not a cell of this project: left for the transport parser to judge.
    assert resolve_cell_sources(["demo/nothing-here"], "docker", root) == ["demo/nothing-here"]
