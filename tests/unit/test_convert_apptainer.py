"""Apptainer metadata: the env script (R2) and the runscript (R1), run by real shells."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from hepbuild.image.apptainer import env_script, runscript

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
