"""Start and stop Debian's ``docker-registry`` (the Distribution registry Harbor embeds).

Three set-ups, all on 127.0.0.1 with config and state kept in one folder:

- ``http``: plain HTTP, no auth (the local profile's registry).
- ``tls-htpasswd``: HTTPS with a throwaway CA and htpasswd Basic auth.
- ``token``: HTTPS with bearer tokens from a small in-process token service, issued the
  way Harbor's ``/service/token`` does (realm, service ``harbor-registry``, scopes).
"""

from __future__ import annotations

import secrets
import signal
import socket
import time
from pathlib import Path
from types import TracebackType
from typing import IO, Any, Literal

import requests
import yaml

from hepbuild import tools
from hepbuild.errors import RegistryError
from hepbuild.files import atomic_write
from hepbuild.registry import pki
from hepbuild.registry.tokenserver import ISSUER, SERVICE, TokenIssuer, TokenServer

Mode = Literal["http", "tls-htpasswd", "token"]
MODES: tuple[str, ...] = ("http", "tls-htpasswd", "token")
READY_TIMEOUT = 20.0


def free_port() -> int:
    """A port on 127.0.0.1 that was free a moment ago (the registry binds it right after)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class LocalRegistry:
    """A throwaway registry. Use as a context manager, or call start() and stop()."""

    def __init__(
        self,
        root: Path,
        port: int | None = None,
        mode: Mode = "http",
        users: dict[str, str] | None = None,
    ) -> None:
        if mode not in MODES:
            raise RegistryError(
                f"unknown registry mode {mode!r}", f"use one of: {', '.join(MODES)}"
            )
        if mode != "http" and not users:
            raise RegistryError(f"registry mode {mode} needs at least one user")
        self.root = Path(root)
        self.port = port
        self.mode: Mode = mode
        self.users = dict(users or {})
        self._proc: Any = None
        self._log: IO[bytes] | None = None
        self._token_server: TokenServer | None = None
        self._pki: pki.LocalPki | None = None

    # -- where things are -------------------------------------------------------------------

    @property
    def url(self) -> str:
        """``host:port`` as registry references spell it."""
        if self.port is None:
            raise RegistryError("the registry has not been started")
        return f"127.0.0.1:{self.port}"

    @property
    def scheme(self) -> str:
        return "http" if self.mode == "http" else "https"

    @property
    def ca_file(self) -> Path | None:
        return self._pki.ca_cert if self._pki else None

    @property
    def log_path(self) -> Path:
        return self.root / "registry.log"

    @property
    def config_path(self) -> Path:
        return self.root / "config.yml"

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None else None

    # -- lifecycle -------------------------------------------------------------------------

    def start(self) -> LocalRegistry:
        if self._proc is not None and self._proc.poll() is None:
            return self
        self.root.mkdir(parents=True, exist_ok=True)
        picked = self.port is None
        for attempt in range(3):
            if picked and (attempt or self.port is None):
                self.port = free_port()
            self.write_config()
            self._spawn(detach=False)
            try:
                self.wait_ready()
                return self
            except RegistryError:
                # A port we picked can be taken by someone else before the registry binds it.
                lost_race = picked and "address already in use" in self.log_tail()
                self.kill()
                if not lost_race or attempt == 2:
                    raise
        return self

    def stop(self) -> None:
        self.kill(graceful=True)
        if self._token_server is not None:
            self._token_server.stop()
            self._token_server = None

    def kill(self, *, graceful: bool = False) -> None:
        """Stop only the registry process (SIGKILL unless graceful); state stays for a restart."""
        if self._proc is not None:
            if self._proc.poll() is None:
                tools.send_signal(self._proc.pid, signal.SIGTERM if graceful else signal.SIGKILL)
                if not self._exited_within(10.0):
                    tools.send_signal(self._proc.pid, signal.SIGKILL)
                self._proc.wait()  # reaps it; after SIGKILL this cannot block for long
            self._proc = None
        if self._log is not None:
            self._log.close()
            self._log = None

    def _exited_within(self, seconds: float) -> bool:
        deadline = time.monotonic() + seconds
        while self._proc.poll() is None:
            if time.monotonic() >= deadline:
                return False
            time.sleep(0.05)
        return True

    def __enter__(self) -> LocalRegistry:
        return self.start()

    def __exit__(
        self,
        kind: type[BaseException] | None,
        value: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    # -- configuration ---------------------------------------------------------------------

    def write_config(self) -> None:
        """Write config.yml (atomically). The http secret is kept so uploads survive restarts."""
        http: dict[str, Any] = {"addr": self.url, "secret": self._http_secret()}
        config: dict[str, Any] = {
            "version": 0.1,
            "log": {"level": "info", "formatter": "text", "accesslog": {"disabled": False}},
            "storage": {
                "filesystem": {"rootdirectory": str(self.root / "data")},
                "delete": {"enabled": True},
                "maintenance": {"uploadpurging": {"enabled": False}},
            },
            "http": http,
        }
        if self.mode != "http":
            self._pki = pki.make_local_pki(self.root / "pki")
            http["tls"] = {
                "certificate": str(self._pki.server_cert),
                "key": str(self._pki.server_key),
            }
        if self.mode == "tls-htpasswd":
            config["auth"] = {
                "htpasswd": {"realm": "hepbuild", "path": str(self._write_htpasswd())}
            }
        if self.mode == "token":
            config["auth"] = {"token": self._token_auth()}
        atomic_write(self.config_path, yaml.safe_dump(config, sort_keys=True))

    def _http_secret(self) -> str:
        path = self.root / "http-secret"
        if not path.exists():
            atomic_write(path, secrets.token_hex(16), mode=0o600)  # never briefly world-readable
        return path.read_text().strip()

    def _write_htpasswd(self) -> Path:
        htpasswd = tools.find_tool("htpasswd", version_args=("-h",)).path
        path = self.root / "htpasswd"
        tmp = path.with_suffix(".tmp")
        tmp.unlink(missing_ok=True)
        for index, (user, password) in enumerate(sorted(self.users.items())):
            tools.register_secret(password)
            create = ["-c"] if index == 0 else []
            # -i reads the password from stdin: it never appears on a command line.
            tools.run(
                [htpasswd, "-i", "-B", *create, tmp, user], input=password.encode(), quiet=True
            )
        tmp.replace(path)
        return path

    def _token_auth(self) -> dict[str, str]:
        assert self._pki is not None
        if self._token_server is None:
            for password in self.users.values():
                tools.register_secret(password)
            issuer = TokenIssuer(self._pki.signing_cert, self._pki.signing_key, self.users)
            self._token_server = TokenServer(issuer, self._pki.server_cert, self._pki.server_key)
            self._token_server.start()
        return {
            "realm": self._token_server.realm,
            "service": SERVICE,
            "issuer": ISSUER,
            "rootcertbundle": str(self._pki.signing_cert),
        }

    @property
    def tokens_issued(self) -> int:
        return self._token_server.issuer.issued if self._token_server else 0

    # -- the process -----------------------------------------------------------------------

    def _spawn(self, *, detach: bool) -> None:
        binary = tools.find_tool("docker-registry").path
        argv = [binary, "serve", str(self.config_path)]
        if detach:
            # setsid puts the daemon in its own session, so the shell's Ctrl-C does not reach it.
            argv = [tools.find_tool("setsid", version_args=("--version",)).path, *argv]
        self._log = open(self.log_path, "ab")  # noqa: SIM115 - lives as long as the process
        self._proc = tools.spawn(argv, stdout=self._log, stderr=self._log, quiet=True)

    def wait_ready(self, timeout: float = READY_TIMEOUT) -> None:
        deadline = time.monotonic() + timeout
        verify: bool | str = str(self.ca_file) if self.ca_file else True
        while time.monotonic() < deadline:
            if self._proc is not None and self._proc.poll() is not None:
                if "address already in use" in self.log_tail():
                    raise RegistryError(
                        f"port {self.port} on 127.0.0.1 is already in use",
                        "stop what listens there, or choose another --port",
                    )
                raise RegistryError(
                    f"docker-registry exited with code {self._proc.returncode} while starting",
                    f"see {self.log_path}:\n{self.log_tail()}",
                )
            try:
                reply = requests.get(f"{self.scheme}://{self.url}/v2/", timeout=2, verify=verify)
                if reply.status_code in (200, 401):
                    return
            except requests.RequestException:
                pass
            time.sleep(0.05)
        raise RegistryError(
            f"docker-registry did not answer on {self.url} within {timeout:.0f} s",
            f"see {self.log_path}",
        )

    def log_tail(self, lines: int = 15) -> str:
        if not self.log_path.exists():
            return ""
        return tools.redact(
            "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        )

    def blob_uploads(self) -> int:
        """Completed blob uploads (final PUT .../blobs/uploads/...) answered 201, from the log."""
        return count_blob_uploads(self.log_path)


def count_blob_uploads(log_path: Path) -> int:
    if not log_path.exists():
        return 0
    count = 0
    for line in log_path.read_text(errors="replace").splitlines():
        if '"PUT /v2/' in line and "/blobs/uploads/" in line and '" 201 ' in line:
            count += 1
    return count


# -- the daemon used by `hepbuild registry start|stop|status` --------------------------------


def pid_file(root: Path) -> Path:
    return root / "registry.pid"


def running_pid(root: Path) -> int | None:
    """The pid of our docker-registry serving ``root``'s config, if it still runs."""
    path = pid_file(root)
    if not path.exists():
        return None
    try:
        pid = int(path.read_text().split()[0])
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except (ValueError, IndexError, OSError):
        return None
    config = str((root / "config.yml").resolve()).encode()
    if any(arg.endswith(b"docker-registry") for arg in cmdline) and config in cmdline:
        return pid
    return None


def running_port(root: Path) -> int | None:
    try:
        return int(pid_file(root).read_text().split()[1])
    except (OSError, ValueError, IndexError):
        return None


def start_daemon(
    root: Path, port: int, mode: Mode = "http", users: dict[str, str] | None = None
) -> tuple[LocalRegistry, bool]:
    """Start a registry that outlives this process. Returns (registry, started_now)."""
    root = root.resolve()
    if mode == "token":
        raise RegistryError(
            "the token set-up needs the in-process token service",
            "use LocalRegistry(..., mode='token') from Python (tests do)",
        )
    registry = LocalRegistry(root, port, mode, users)
    if running_pid(root) is not None:
        registry.port = running_port(root) or port
        if mode != "http":
            registry._pki = pki.make_local_pki(root / "pki")
        return registry, False
    root.mkdir(parents=True, exist_ok=True)
    registry.write_config()
    registry._spawn(detach=True)
    registry.wait_ready()
    atomic_write(pid_file(root), f"{registry.pid} {port} {mode}\n")
    registry._proc = None  # the daemon is no longer ours to reap; the pid file tracks it
    return registry, True


def stop_daemon(root: Path, timeout: float = 10.0) -> bool:
    """Stop the daemon serving ``root``. Returns False when none was running."""
    root = root.resolve()
    pid = running_pid(root)
    if pid is None:
        pid_file(root).unlink(missing_ok=True)
        return False
    tools.send_signal(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and Path(f"/proc/{pid}").exists():
        if _is_zombie(pid):
            break
        time.sleep(0.05)
    if Path(f"/proc/{pid}").exists() and not _is_zombie(pid):
        tools.send_signal(pid, signal.SIGKILL)
    pid_file(root).unlink(missing_ok=True)
    return True


def _is_zombie(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0] == "Z"
    except (OSError, IndexError):
        return True
