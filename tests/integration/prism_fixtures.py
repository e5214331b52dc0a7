"""Prism serving Harbor's published OpenAPI document, on a free 127.0.0.1 port.

Prism checks each request against the spec and answers 4xx (with an ``sl-violations``
header) when it breaks it, so a call that gets 2xx was a valid Harbor request. Prism serves
the paths without the ``/api/v2.0`` base path; the client's root is the bare server URL.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import requests

REPO = Path(__file__).resolve().parents[2]
SPEC = REPO.parent / "shared" / "peers" / "harbor" / "swagger-v2.16.0.yaml"


def _prism_binary() -> str:
    local = REPO / "node_modules" / ".bin" / "prism"
    found = str(local) if local.exists() else shutil.which("prism")
    if not found:
        pytest.fail("prism is not installed (npm install @stoplight/prism-cli@5)")
    return found


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _wait_listening(url: str, proc: subprocess.Popen[bytes], deadline: float) -> None:
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"prism exited early with code {proc.returncode}")
        try:
            requests.head(url + "/projects", params={"project_name": "probe"}, timeout=5)
            return
        except (requests.ConnectionError, requests.Timeout):  # not listening, or still loading
            time.sleep(0.2)
    pytest.fail("prism did not answer within 90 s")


@dataclass
class PrismServer:
    url: str
    log: Path


@dataclass
class ResponseLog:
    """Every response a session saw, to assert that none carried a spec violation."""

    responses: list[requests.Response] = field(default_factory=list)

    def record(self, response: requests.Response, *args: object, **kwargs: object) -> None:
        self.responses.append(response)

    def violations(self) -> list[str]:
        return [r.headers["sl-violations"] for r in self.responses if "sl-violations" in r.headers]


@pytest.fixture(scope="session", name="prism_server")
def prism_server_fixture(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PrismServer]:
    port = _free_port()
    log = tmp_path_factory.mktemp("prism") / "prism.log"
    argv = [_prism_binary(), "mock", "-h", "127.0.0.1", "-p", str(port), str(SPEC)]
    with log.open("wb") as out:
        proc = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        _wait_listening(url, proc, time.monotonic() + 90)
        yield PrismServer(url=url, log=log)
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
