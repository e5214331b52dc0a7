"""The one door to external programs.

Every buildah, skopeo, umoci, mksquashfs, tar2sqfs, siftool, qemu or mmdebstrap call goes
through here. Each command is printed before it runs, secrets are kept off the command line
(callers pass auth files or stdin) and scrubbed from anything logged, and a failure raises
``ToolError`` with the command, the exit code and the tail of the output.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import threading
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import IO, Any

from hepbuild.errors import ToolError, ToolMissing

# Debian package (and a dnf hint) for each tool, named in "not found" errors.
INSTALL_HINTS: dict[str, str] = {
    "buildah": "apt-get install buildah   (dnf install buildah)",
    "skopeo": "apt-get install skopeo   (dnf install skopeo)",
    "umoci": "apt-get install umoci",
    "siftool": "apt-get install siftool",
    "mksquashfs": "apt-get install squashfs-tools   (dnf install squashfs-tools)",
    "unsquashfs": "apt-get install squashfs-tools   (dnf install squashfs-tools)",
    "tar2sqfs": "apt-get install squashfs-tools-ng   (dnf install squashfs-tools-ng)",
    "sqfs2tar": "apt-get install squashfs-tools-ng   (dnf install squashfs-tools-ng)",
    "sqfsdiff": "apt-get install squashfs-tools-ng",
    "mmdebstrap": "apt-get install mmdebstrap",
    "docker-registry": "apt-get install docker-registry",
    "htpasswd": "apt-get install apache2-utils",
    "openssl": "apt-get install openssl",
    "qemu-aarch64-static": "apt-get install qemu-user-static binfmt-support",
    "qemu-arm-static": "apt-get install qemu-user-static binfmt-support",
    "qemu-i386-static": "apt-get install qemu-user-static binfmt-support",
    "qemu-x86_64-static": "apt-get install qemu-user-static binfmt-support",
    "busybox": "apt-get install busybox-static",
    "git": "apt-get install git",
    "prism": "npm install @stoplight/prism-cli@5",
    "gitlab-ci-local": "npm install gitlab-ci-local@4.56.2",
}

# For spawn()'s stdin/stdout/stderr, so callers need not import subprocess themselves.
PIPE = subprocess.PIPE
DEVNULL = subprocess.DEVNULL

_VERSION_RE = re.compile(r"(\d+\.\d+(?:\.\d+)?)")

# Secrets registered here are scrubbed from every echoed command, log line and error.
_SECRETS: set[str] = set()
_SECRETS_LOCK = threading.Lock()


def register_secret(value: str | None) -> None:
    """Remember a secret so that it is scrubbed wherever it would be printed or logged."""
    if value and len(value) >= 3:
        with _SECRETS_LOCK:
            _SECRETS.add(value)


def redact(text: str, extra: Iterable[str] = ()) -> str:
    with _SECRETS_LOCK:
        secrets = sorted(_SECRETS | {s for s in extra if s}, key=len, reverse=True)
    for secret in secrets:
        text = text.replace(secret, "***")
    return text


@dataclass(frozen=True)
class Tool:
    name: str
    path: str
    version: str | None


def find_tool(
    name: str, *, min_version: str | None = None, version_args: Sequence[str] = ("--version",)
) -> Tool:
    """Find ``name`` on PATH once, read its version, and fail with how to install it."""
    found = _which(name)
    if found is None:
        hint = INSTALL_HINTS.get(name, f"install {name} and make sure it is on PATH")
        raise ToolMissing(f"{name} was not found on PATH", hint)
    version = tool_version(found, tuple(version_args))
    if min_version and version and _as_tuple(version) < _as_tuple(min_version):
        hint = INSTALL_HINTS.get(name, f"upgrade {name}")
        raise ToolMissing(
            f"{name} {version} at {found} is too old; hepbuild needs {min_version} or newer", hint
        )
    return Tool(name, found, version)


def have_tool(name: str) -> bool:
    return _which(name) is not None


def _which(name: str) -> str | None:
    extra = [str(Path(sys.prefix) / "bin"), str(Path.cwd() / "node_modules" / ".bin")]
    path = os.pathsep.join([os.environ.get("PATH", ""), *extra])
    return shutil.which(name, path=path)


@cache
def tool_version(path: str, version_args: tuple[str, ...] = ("--version",)) -> str | None:
    try:
        proc = subprocess.run(
            [path, *version_args],
            capture_output=True,
            text=True,
            timeout=30,
            stdin=subprocess.DEVNULL,
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    match = _VERSION_RE.search(proc.stdout + proc.stderr)
    return match.group(1) if match else None


def _as_tuple(version: str) -> tuple[int, ...]:
    return tuple(int(p) for p in version.split("."))


@dataclass(frozen=True)
class Result:
    argv: list[str]
    returncode: int
    stdout: bytes
    stderr: bytes

    @property
    def text(self) -> str:
        return self.stdout.decode("utf-8", "replace")


def format_argv(argv: Sequence[str]) -> str:
    return redact(" ".join(shlex.quote(str(a)) for a in argv))


def _echo(argv: Sequence[str], quiet: bool) -> None:
    _record_argv(argv)
    if not quiet:
        print(f"+ {format_argv(argv)}", file=sys.stderr, flush=True)


def _record_argv(argv: Sequence[str]) -> None:
    """Append the argv to $HEPBUILD_ARGV_LOG (one JSON list a line), for the secrets test."""
    log = os.environ.get("HEPBUILD_ARGV_LOG")
    if log:
        with open(log, "a", encoding="utf-8") as fh:
            fh.write(json.dumps([str(a) for a in argv]) + "\n")


def _tail(data: bytes, lines: int = 25) -> str:
    text = data.decode("utf-8", "replace")
    return redact("\n".join(text.splitlines()[-lines:]))


def run(
    argv: Sequence[str | os.PathLike[str]],
    *,
    input: bytes | None = None,
    cwd: str | os.PathLike[str] | None = None,
    env: Mapping[str, str] | None = None,
    log_file: IO[bytes] | None = None,
    check: bool = True,
    quiet: bool = False,
    timeout: float | None = None,
    hint: str | None = None,
) -> Result:
    """Run a command to completion.

    With ``log_file`` the merged output streams into that file (redacted) and is not kept in
    memory; otherwise stdout and stderr are captured. ``env`` is added to os.environ.
    """
    args = [str(a) for a in argv]
    _echo(args, quiet)
    full_env = {**os.environ, **env} if env else None
    try:
        if log_file is not None:
            return _run_logged(args, input, cwd, full_env, log_file, check, timeout, hint)
        proc = subprocess.run(
            args,
            input=input,
            cwd=cwd,
            env=full_env,
            capture_output=True,
            timeout=timeout,
            stdin=None if input is not None else subprocess.DEVNULL,
        )
    except FileNotFoundError:
        raise ToolMissing(
            f"{args[0]} was not found", INSTALL_HINTS.get(Path(args[0]).name)
        ) from None
    except subprocess.TimeoutExpired as exc:
        raise ToolError(
            _redacted(args), -1, _tail(exc.stderr or b""), f"timed out after {timeout} s"
        ) from None
    result = Result(args, proc.returncode, proc.stdout, proc.stderr)
    if check and proc.returncode != 0:
        raise ToolError(_redacted(args), proc.returncode, _tail(proc.stderr or proc.stdout), hint)
    return result


def _run_logged(args, input, cwd, env, log_file, check, timeout, hint) -> Result:
    log_file.write(f"+ {format_argv(args)}\n".encode())
    log_file.flush()
    proc = subprocess.Popen(
        args,
        cwd=cwd,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        stdin=subprocess.PIPE if input is not None else subprocess.DEVNULL,
    )
    if input is not None:
        assert proc.stdin is not None
        proc.stdin.write(input)
        proc.stdin.close()
    tail: list[bytes] = []
    assert proc.stdout is not None
    for line in proc.stdout:
        log_file.write(redact(line.decode("utf-8", "replace")).encode())
        tail.append(line)
        del tail[:-40]
    proc.stdout.close()
    log_file.flush()
    returncode = proc.wait(timeout=timeout)
    if check and returncode != 0:
        raise ToolError(_redacted(args), returncode, _tail(b"".join(tail)), hint)
    return Result(args, returncode, b"", b"")


def _redacted(args: Sequence[str]) -> list[str]:
    return [redact(a) for a in args]


def spawn(
    argv: Sequence[str | os.PathLike[str]],
    *,
    stdin: Any = subprocess.DEVNULL,
    stdout: Any = subprocess.PIPE,
    stderr: Any = subprocess.PIPE,
    cwd: str | os.PathLike[str] | None = None,
    env: Mapping[str, str] | None = None,
    quiet: bool = False,
) -> subprocess.Popen[bytes]:
    """Start a command for streaming (a tar piped into tar2sqfs, say). Use ``wait_checked``."""
    args = [str(a) for a in argv]
    _echo(args, quiet)
    full_env = {**os.environ, **env} if env else None
    try:
        return subprocess.Popen(
            args, stdin=stdin, stdout=stdout, stderr=stderr, cwd=cwd, env=full_env
        )
    except FileNotFoundError:
        raise ToolMissing(
            f"{args[0]} was not found", INSTALL_HINTS.get(Path(args[0]).name)
        ) from None


def send_signal(pid: int, sig: int) -> bool:
    """Signal a process hepbuild started earlier (a daemon, by its pid file).

    False when it is already gone; a pid we may not signal is an error naming it.
    """
    try:
        os.kill(pid, sig)
    except ProcessLookupError:
        return False
    except PermissionError:
        hint = "that process belongs to another user"
        raise ToolError([f"kill -{sig} {pid}"], -1, "", hint) from None
    return True


def wait_checked(
    proc: subprocess.Popen[bytes], *, hint: str | None = None, stderr_text: bytes = b""
) -> int:
    """Wait for a spawned command; raise ToolError on a non-zero exit."""
    err = stderr_text
    if proc.stderr is not None and not err:
        err = proc.stderr.read()
    returncode = proc.wait()
    for stream in (proc.stdin, proc.stdout, proc.stderr):
        if stream is not None:
            stream.close()
    if returncode != 0:
        argv = proc.args if isinstance(proc.args, list) else [str(proc.args)]
        raise ToolError(_redacted([str(a) for a in argv]), returncode, _tail(err), hint)
    return returncode
