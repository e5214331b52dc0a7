"""The tools door, output formatting and the CLI's error handling."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from hepbuild import cli, tools
from hepbuild.errors import ConfigError, Problem, ToolError, ToolMissing
from hepbuild.output import format_table


def test_run_failure_carries_command_code_and_tail() -> None:
    with pytest.raises(ToolError) as err:
        tools.run(
            [sys.executable, "-c", "import sys; print('boom', file=sys.stderr); sys.exit(3)"],
            quiet=True,
        )
    assert err.value.returncode == 3
    assert "boom" in err.value.tail
    assert sys.executable in err.value.argv


def test_registered_secrets_are_scrubbed_from_echo_and_errors(
    capsys: pytest.CaptureFixture[str],
) -> None:
    tools.register_secret("hunter2-secret")
    with pytest.raises(ToolError) as err:
        tools.run(
            [
                sys.executable,
                "-c",
                "import sys; print('token hunter2-secret', file=sys.stderr); sys.exit(1)",
                "hunter2-secret",
            ]
        )
    printed = capsys.readouterr().err
    assert "hunter2-secret" not in printed and "***" in printed
    assert "hunter2-secret" not in err.value.render()


def test_argv_log_records_every_spawned_command(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    log = tmp_path / "argv.jsonl"
    monkeypatch.setenv("HEPBUILD_ARGV_LOG", str(log))
    tools.run([sys.executable, "-c", "pass"], quiet=True)
    proc = tools.spawn([sys.executable, "-c", "pass"], quiet=True)
    tools.wait_checked(proc)
    lines = [json.loads(line) for line in log.read_text().splitlines()]
    assert lines == [[sys.executable, "-c", "pass"], [sys.executable, "-c", "pass"]]


def test_missing_tool_names_the_package_to_install() -> None:
    with pytest.raises(ToolMissing) as err:
        tools.find_tool("tar2sqfs-not-here")
    assert "tar2sqfs-not-here" in err.value.message
    with pytest.raises(ToolMissing) as err2:
        tools.run(["/nonexistent/mksquashfs"], quiet=True)
    assert err2.value.hint == tools.INSTALL_HINTS["mksquashfs"]


def test_logged_run_streams_redacted_output(tmp_path: Path) -> None:
    tools.register_secret("pw-in-log-123")
    log = tmp_path / "cell.log"
    with log.open("wb") as fh:
        tools.run([sys.executable, "-c", "print('a pw-in-log-123 b')"], log_file=fh, quiet=True)
    text = log.read_text()
    assert "a *** b" in text and "pw-in-log-123" not in text


def test_table_is_aligned_and_marks_empty_cells() -> None:
    table = format_table(
        [{"cell": "a/b-debian12-x86_64", "digest": None}, {"cell": "c", "digest": "sha256:1"}],
        ["cell", "digest"],
    )
    assert table.splitlines() == [
        "CELL                 DIGEST",
        "a/b-debian12-x86_64  -",
        "c                    sha256:1",
    ]


def test_cli_prints_problems_without_traceback(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    def explode(_args: object) -> int:
        raise ConfigError([Problem("matrix.yaml", 7, "unknown arch 'sparc'", "use x86_64")])

    parser = cli.build_parser
    monkeypatch.setattr(cli, "build_parser", lambda: _with_command(parser(), explode))
    code = cli.main(["boom"])
    err = capsys.readouterr().err
    assert code == ConfigError.exit_code
    assert "matrix.yaml:7: unknown arch 'sparc'" in err and "hint: use x86_64" in err
    assert "Traceback" not in err


def test_cli_turns_a_crash_into_a_short_report(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    def crash(_args: object) -> int:
        raise RuntimeError("unexpected")

    parser = cli.build_parser
    monkeypatch.setattr(cli, "build_parser", lambda: _with_command(parser(), crash))
    assert cli.main(["boom"]) == 70
    err = capsys.readouterr().err
    assert "internal error: RuntimeError: unexpected" in err and "Traceback" not in err


def _with_command(parser, func):  # type: ignore[no-untyped-def]
    sub = next(a for a in parser._actions if a.dest == "command")
    sub.add_parser("boom").set_defaults(func=func)
    return parser


@pytest.mark.parametrize("where", ["/nonexistent/project", "/etc/hostname"])
def test_a_bad_project_directory_is_a_usage_error(where: str,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["-C", where, "matrix"]) == 2
    err = capsys.readouterr().err
    assert f"cannot use -C {where}" in err and "Traceback" not in err


def test_sections_fold_in_gitlab_and_show_their_time(monkeypatch: pytest.MonkeyPatch,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    from hepbuild.output import section

    monkeypatch.setenv("GITLAB_CI", "true")
    with section("cell_juno/offline-env-debian12-arm64", "build juno/offline-env"):
        print("inside", file=sys.stderr)
    lines = capsys.readouterr().err.split("\n")  # not splitlines: \r is part of the marker
    assert lines[0].startswith("\x1b[0Ksection_start:")
    assert lines[0].endswith(":cell_juno_offline-env-debian12-arm64[collapsed=true]"
                             "\r\x1b[0Kbuild juno/offline-env")
    assert lines[1] == "inside"
    assert lines[2].startswith("\x1b[0Ksection_end:")
    assert lines[2].endswith(":cell_juno_offline-env-debian12-arm64\r\x1b[0K")
    assert lines[3].startswith("    build juno/offline-env: ") and lines[3].endswith(" s")


def test_sections_outside_gitlab_are_plain_headers(capsys: pytest.CaptureFixture[str]) -> None:
    from hepbuild.output import section

    with section("push", "push per-arch images"):
        pass
    err = capsys.readouterr().err
    assert err.startswith("==> push per-arch images\n") and "section_start" not in err
