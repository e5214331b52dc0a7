"""Reading a buildah build log: which Dockerfile instruction failed, and the log's tail."""

from __future__ import annotations

import re
from pathlib import Path

_STEP = re.compile(r"^STEP (\d+)/(\d+): (.*)$")
_ERROR_AT = re.compile(r'(?:Error: |error )building at STEP "(.*)": (.*)$')


def failing_step(log_text: str) -> str:
    """``STEP 3/4: RUN make (exit status 2)`` for the last step the log reached.

    buildah names the failing instruction in its final error line; we prefer that and fall
    back to the last ``STEP n/m:`` announcement (e.g. when the FROM image could not be pulled).
    """
    last_step: tuple[str, str, str] | None = None
    error: tuple[str, str] | None = None
    for line in log_text.splitlines():
        step = _STEP.match(line.strip())
        if step:
            last_step = (step.group(1), step.group(2), step.group(3))
        found = _ERROR_AT.search(line)
        if found:
            error = (found.group(1), found.group(2))
    if error and last_step and last_step[2] == error[0]:
        return f"STEP {last_step[0]}/{last_step[1]}: {error[0]} ({error[1]})"
    if error:
        return f"{error[0]} ({error[1]})"
    if last_step:
        return f"STEP {last_step[0]}/{last_step[1]}: {last_step[2]}"
    return "before the first Dockerfile step"


def log_tail(path: Path, lines: int = 30) -> str:
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return ""
    return "\n".join(text.splitlines()[-lines:])
