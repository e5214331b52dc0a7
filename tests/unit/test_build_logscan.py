"""Finding the failing Dockerfile step in a buildah log."""

from __future__ import annotations

from pathlib import Path

from hepbuild.build.logscan import failing_step, log_tail

FAILED_RUN = """\
+ buildah build --isolation chroot -t x .
STEP 1/4: FROM localhost/bb:arm64
STEP 2/4: RUN uname -m > /arch
STEP 3/4: RUN echo hello
hello
STEP 4/4: RUN sh -c "exit 3"
subprocess exited with status 3
Error: building at STEP "RUN sh -c "exit 3"": exit status 3
"""


def test_failing_run_step_is_named_with_number_and_exit_status() -> None:
    assert failing_step(FAILED_RUN) == 'STEP 4/4: RUN sh -c "exit 3" (exit status 3)'


def test_step_in_the_middle_of_a_multistage_build() -> None:
    log = ("STEP 1/6: FROM a AS builder\nSTEP 2/6: RUN make\nmake: *** Error 2\n"
           'Error: building at STEP "RUN make": exit status 2\n')
    assert failing_step(log) == "STEP 2/6: RUN make (exit status 2)"


def test_failed_pull_falls_back_to_the_last_step() -> None:
    log = "STEP 1/3: FROM 127.0.0.1:5000/nope:1\nError: creating build container: not found\n"
    assert failing_step(log) == "STEP 1/3: FROM 127.0.0.1:5000/nope:1"


def test_nothing_recognisable() -> None:
    assert failing_step("Error: no such file Dockerfile\n") == "before the first Dockerfile step"


def test_log_tail_keeps_the_last_lines(tmp_path: Path) -> None:
    log = tmp_path / "x.log"
    log.write_text("\n".join(f"line {i}" for i in range(100)) + "\n")
    assert log_tail(log, 3) == "line 97\nline 98\nline 99"
    assert log_tail(tmp_path / "missing.log") == ""
