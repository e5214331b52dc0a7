"""Apptainer metadata: the env script (R2) and the runscript (R1), run by real shells."""

from __future__ import annotations

import io
import json
import shutil
import subprocess
import tarfile
from pathlib import Path

import pytest
from oci_layouts import TarEntry, tar_bytes

from hepbuild.image.apptainer import (
    BASE_DIRS,
    TOP_LINKS,
    Metadata,
    env_script,
    metadata_layer,
    runscript,
)
from hepbuild.image.flatten import Flattener

SHELLS = ["sh", "bash", "dash"]
R1_ENTRYPOINT = ["sh", "-c", 'echo EP && "$0" "$@"']
R1_CMD = ["echo", "C"]


def shell_path(name: str) -> str:
    found = shutil.which(name)
    if found is None:
        pytest.skip(f"{name} is not installed (apt-get install {name})")
    return found


def run_script(tmp_path: Path, shell: str, text: str, *args: str,
               env: dict[str, str] | None = None) -> str:
    script = tmp_path / "script.sh"
    script.write_text(text)
    proc = subprocess.run([shell_path(shell), str(script), *args], capture_output=True,
                          text=True, env=env or {"PATH": "/usr/bin:/bin"}, check=True)
    return proc.stdout


@pytest.mark.parametrize("shell", SHELLS)
def test_r1_entrypoint_and_cmd_without_arguments(tmp_path: Path, shell: str) -> None:
    assert run_script(tmp_path, shell, runscript(R1_ENTRYPOINT, R1_CMD)) == "EP\nC\n"


@pytest.mark.parametrize("shell", SHELLS)
def test_r1_arguments_replace_cmd(tmp_path: Path, shell: str) -> None:
    out = run_script(tmp_path, shell, runscript(R1_ENTRYPOINT, R1_CMD), "ls", "/")
    lines = out.splitlines()
    assert lines[0] == "EP" and "usr" in lines[1:] and "C" not in lines


@pytest.mark.parametrize("shell", SHELLS)
@pytest.mark.parametrize("no_eval", [False, True])
def test_r1_single_sided_cases(tmp_path: Path, shell: str, no_eval: bool) -> None:
    env = {"PATH": "/usr/bin:/bin", **({"SINGULARITY_NO_EVAL": "1"} if no_eval else {})}
    only_ep = runscript(["echo", "ep"], [])
    only_cmd = runscript([], ["echo", "cmd"])
    both = runscript(["echo", "ep"], ["default"])
    assert run_script(tmp_path, shell, only_ep, "a b", env=env) == "ep a b\n"
    assert run_script(tmp_path, shell, only_cmd, env=env) == "cmd\n"
    assert run_script(tmp_path, shell, only_cmd, "echo", "x", env=env) == "x\n"
    assert run_script(tmp_path, shell, both, env=env) == "ep default\n"
    assert run_script(tmp_path, shell, both, "given", env=env) == "ep given\n"


@pytest.mark.parametrize("shell", SHELLS)
def test_r1_runtime_arguments_are_never_evaluated(tmp_path: Path, shell: str) -> None:
    script = runscript(["printf", "%s|"], [])
    hostile = ['$(touch pwned)', '`id`', '"; echo hi', "it's", "$HOME"]
    out = run_script(tmp_path, shell, script, *hostile)
    assert out == "|".join(hostile) + "|"
    assert not (tmp_path / "pwned").exists()


R2_ENV = ["D1=$(date)", "D2=`date`", "FOO=BAR BAZ", 'BOB=Hello$n"Bob', "EMPTY=",
          "PATH=/opt/x/bin:/usr/bin", "NOVALUE", "BAD.NAME=x", "QUOTE=it's \\ done"]
R2_EXPECTED = {"D1": "$(date)", "D2": "`date`", "FOO": "BAR BAZ", "BOB": 'Hello$n"Bob',
               "EMPTY": "", "PATH": "/opt/x/bin:/usr/bin", "NOVALUE": "",
               "QUOTE": "it's \\ done"}


def sourced_values(tmp_path: Path, shell: str, preset: dict[str, str]) -> dict[str, str]:
    env_file = tmp_path / "env.sh"
    env_file.write_text(env_script(R2_ENV))
    names = " ".join(R2_EXPECTED)
    probe = (f'. "{env_file}"\nfor n in {names}; do\n'
             '  eval "v=\\${$n}"; printf "%s=%s\\0" "$n" "$v"\ndone\n')
    out = run_script(tmp_path, shell, probe, env={"PATH": "/usr/bin:/bin", **preset})
    return dict(item.split("=", 1) for item in out.split("\0") if item)


@pytest.mark.parametrize("shell", SHELLS)
def test_r2_hostile_values_come_back_byte_for_byte(tmp_path: Path, shell: str) -> None:
    assert sourced_values(tmp_path, shell, {}) == R2_EXPECTED


@pytest.mark.parametrize("shell", SHELLS)
def test_r2_runtime_values_win_except_path(tmp_path: Path, shell: str) -> None:
    values = sourced_values(tmp_path, shell, {"FOO": "mine", "PATH": "/usr/bin:/bin"})
    assert values["FOO"] == "mine" and values["PATH"] == "/opt/x/bin:/usr/bin"


def test_r2_invalid_names_are_skipped_with_a_warning(capsys: pytest.CaptureFixture[str]) -> None:
    text = env_script(["BAD.NAME=x", "1X=y", "GOOD=z"])
    assert "BAD.NAME" not in text and "1X" not in text and "GOOD" in text
    err = capsys.readouterr().err
    assert "'BAD.NAME=x' skipped" in err and "'1X=y' skipped" in err


def test_env_script_matches_the_documented_quoting() -> None:
    text = env_script(["PATH=/usr/bin:/bin", "LANG=C.UTF-8", 'MSG=say "hi" $HOME', "EMPTY"])
    assert text == ('#!/bin/sh\nexport PATH="/usr/bin:/bin"\n'
                    'export LANG="${LANG:-"C.UTF-8"}"\n'
                    'export MSG="${MSG:-"say \\"hi\\" \\$HOME"}"\n'
                    'export EMPTY="${EMPTY:-}"\n')


def test_runscript_header_lines() -> None:
    text = runscript(["/docker-entrypoint.sh"], ["nginx", "-g", "daemon off;"])
    lines = text.splitlines()
    assert lines[1] == "OCI_ENTRYPOINT='\"/docker-entrypoint.sh\"'"
    assert lines[2] == "OCI_CMD='\"nginx\" \"-g\" \"daemon off;\"'"


def test_metadata_layer_adds_what_apptainer_expects(tmp_path: Path) -> None:
    lower = tmp_path / "l.tar"
    lower.write_bytes(tar_bytes([TarEntry("etc", "dir", mode=0o700),
                                 TarEntry("etc/resolv.conf", "symlink", link="/run/resolv"),
                                 TarEntry("singularity", "file", data=b"mine"),
                                 TarEntry(".run", "symlink", link="wrong")]))
    flat = Flattener()
    flat.add_layer(lower, "layer 1")
    config = {"config": {"Env": ["A=1"], "Cmd": ["true"], "Labels": {"x": "y"}}}
    layer = metadata_layer(flat, Metadata(config, "amd64", "bootstrap: docker\nfrom: x\n\n"))
    with tarfile.open(fileobj=io.BytesIO(layer)) as tf:
        members = {m.name: m for m in tf.getmembers()}
        labels = tf.extractfile(".singularity.d/labels.json").read()  # type: ignore[union-attr]
    assert "etc" not in members  # the image's own directory keeps its mode
    assert {d for d in BASE_DIRS if d != "etc"} <= set(members)
    assert "singularity" not in members  # a non-symlink is left alone
    assert members[".run"].linkname == TOP_LINKS[".run"]  # a wrong symlink is replaced
    assert members["etc/resolv.conf"].isreg() and members["etc/hosts"].isreg()
    for name in ("exec", "run", "shell", "start", "test"):
        assert members[f".singularity.d/actions/{name}"].mode == 0o755
    assert members[".singularity.d/env/10-docker2singularity.sh"].mode == 0o755
    assert json.loads(labels) == {"x": "y", "org.label-schema.schema-version": "1.0",
                                   "org.opencontainers.image.architecture": "amd64",
                                   "org.label-schema.build-arch": "amd64"}
    assert labels.startswith(b'{\n\t"')
