"""Error classes. Library code raises these; only ``cli.py`` turns them into output and exits.

Each class carries its own exit code, so scripts can tell a bad recipe from a failed build.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass


class HepbuildError(Exception):
    """Base of every error a user may see. ``hint`` says what to do about it."""

    exit_code = 1

    def __init__(self, message: str, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def render(self) -> str:
        text = f"error: {self.message}"
        if self.hint:
            text += f"\n  hint: {self.hint}"
        return text


class UsageError(HepbuildError):
    """The command line itself is wrong (unknown transport, bad glob, missing argument)."""

    exit_code = 2


@dataclass(frozen=True)
class Problem:
    """One problem in a user's file: where it is, what is wrong and what to do."""

    file: str
    line: int | None
    message: str
    hint: str | None = None

    def render(self) -> str:
        where = f"{self.file}:{self.line}" if self.line else self.file
        text = f"{where}: {self.message}"
        if self.hint:
            text += f"\n    hint: {self.hint}"
        return text


class ConfigError(HepbuildError):
    """matrix.yaml or a recipe is invalid. Carries every problem found, not only the first."""

    exit_code = 3

    def __init__(self, problems: Sequence[Problem]) -> None:
        self.problems = list(problems)
        count = len(self.problems)
        noun = "problem" if count == 1 else "problems"
        super().__init__(f"{count} {noun} in the configuration")

    def render(self) -> str:
        lines = [f"error: {self.message}:"]
        lines += ["  " + p.render() for p in self.problems]
        return "\n".join(lines)


class RenderError(HepbuildError):
    """A template failed to render for a cell."""

    exit_code = 4


class ToolMissing(HepbuildError):
    """An external program is not installed or too old."""

    exit_code = 5


class ToolError(HepbuildError):
    """An external program failed. Carries the (redacted) command, exit code and output tail."""

    exit_code = 6

    def __init__(self, argv: Sequence[str], returncode: int, tail: str, hint: str | None = None):
        self.argv = list(argv)
        self.returncode = returncode
        self.tail = tail
        cmd = " ".join(self.argv)
        super().__init__(f"command failed with exit code {returncode}: {cmd}", hint)

    def render(self) -> str:
        text = super().render()
        if self.tail.strip():
            indented = "\n".join("  | " + line for line in self.tail.rstrip().splitlines())
            text += "\n  last output:\n" + indented
        return text


class BuildError(HepbuildError):
    """A cell failed to build. Names the cell, the failing step and shows the log tail."""

    exit_code = 7

    def __init__(self, cell_id: str, step: str, log_path: str, tail: str, hint: str | None = None):
        self.cell_id = cell_id
        self.step = step
        self.log_path = log_path
        self.tail = tail
        super().__init__(f"cell {cell_id} failed at step: {step} (log: {log_path})", hint)

    def render(self) -> str:
        text = super().render()
        if self.tail.strip():
            indented = "\n".join("  | " + line for line in self.tail.rstrip().splitlines())
            text += "\n  end of log:\n" + indented
        return text


class ImageError(HepbuildError):
    """An image, layer, SIF file or sandbox is malformed or unsafe."""

    exit_code = 8


class RegistryError(HepbuildError):
    """A registry or Harbor refused a request or could not be reached."""

    exit_code = 9


class AuthError(RegistryError):
    """Credentials are missing or were refused. Never carries the secret itself."""

    exit_code = 10
