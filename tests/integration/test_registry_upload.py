"""Upload behaviour behind awkward proxies (G5), mounts, 5xx retries, a stale Range.

A small proxy in front of the real docker-registry caps request bodies, truncates them, fakes
a stale Range, refuses mounts or answers 503 now and then.
"""

from __future__ import annotations

import hashlib
import http.client
import os
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from registry_fixtures import registry_http  # noqa: F401

from hepbuild.errors import RegistryError
from hepbuild.registry.client import MiB, RegistryClient
from hepbuild.registry.server import LocalRegistry

pytestmark = [pytest.mark.registry, pytest.mark.xdist_group("registry")]
CAP = 4 * MiB
G5_SIZE = 5 * MiB + 7


@dataclass
class ProxyRules:
    cap: int | None = None  # refuse bodies over this with 416
    truncate_to: int | None = None  # forward only this many bytes of a longer PATCH
    stale_range: bool = False  # answer every PATCH with 202 and Range 0-0
    refuse_mount: bool = False
    fail_every: int = 0  # answer every n-th PATCH with 503
    drop_final_put: int = 0  # forward this many final PUTs, then drop the connection unanswered
    bodies: list[int] = field(default_factory=list)  # sizes forwarded upstream
    refused: int = 0
    patches: int = 0


class Proxy:
    def __init__(self, upstream: str, rules: ProxyRules) -> None:
        self.rules = rules
        handler = _handler(upstream, rules)
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    @property
    def url(self) -> str:
        return f"127.0.0.1:{self._server.server_address[1]}"

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()


def _handler(upstream: str, rules: ProxyRules) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def _any(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else b""
            headers = {k: v for k, v in self.headers.items() if k.lower() != "content-length"}
            if self.command == "PATCH":
                rules.patches += 1
                if rules.fail_every and rules.patches % rules.fail_every == 0:
                    return self._reply(503, {})
                if rules.stale_range:
                    return self._reply(202, {"Range": "0-0", "Location": self.path})
            if rules.cap is not None and length > rules.cap:
                rules.refused += 1
                return self._reply(416, {})
            if rules.refuse_mount and "mount=" in self.path:
                return self._reply(403, {})
            if self.command == "PATCH" and rules.truncate_to and length > rules.truncate_to:
                start = int(headers["Content-Range"].split("-")[0])
                body = body[: rules.truncate_to]
                headers["Content-Range"] = f"{start}-{start + len(body) - 1}"
            if self.command == "PUT" and "digest=" in self.path and rules.drop_final_put:
                rules.drop_final_put -= 1
                self._forward(headers, body, answer=False)
                self.close_connection = True
                return
            self._forward(headers, body)

        def _forward(self, headers: dict[str, str], body: bytes, answer: bool = True) -> None:
            rules.bodies.append(len(body))
            conn = http.client.HTTPConnection(upstream, timeout=60)
            conn.request(
                self.command,
                self.path,
                body=body or None,
                headers={**headers, "Content-Length": str(len(body))},
            )
            reply = conn.getresponse()
            data = reply.read()
            if not answer:
                conn.close()
                self.connection.shutdown(2)  # the registry did the work; the client hears nothing
                return
            self.send_response(reply.status)
            for key, value in reply.getheaders():
                if key.lower() not in ("content-length", "connection", "transfer-encoding"):
                    self.send_header(key, value)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(data)
            conn.close()

        def _reply(self, status: int, headers: dict[str, str]) -> None:
            self.send_response(status)
            for key, value in headers.items():
                self.send_header(key, value)
            self.send_header("Content-Length", "0")
            self.end_headers()

        do_GET = do_HEAD = do_PUT = do_POST = do_PATCH = do_DELETE = _any  # noqa: N815

        def log_message(self, format: str, *args: object) -> None:  # noqa: A002
            return

    return Handler


@pytest.fixture
def proxy_factory(registry_http: LocalRegistry) -> Iterator:  # noqa: F811
    proxies: list[Proxy] = []

    def make(rules: ProxyRules) -> Proxy:
        proxies.append(Proxy(registry_http.url, rules))
        return proxies[-1]

    yield make
    for proxy in proxies:
        proxy.close()


def _digest(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def _stored(registry: LocalRegistry, repo: str, data: bytes, tmp_path: Path) -> bytes:
    out = tmp_path / "blob"
    with RegistryClient(registry.url, insecure=True) as client:
        client.get_blob(repo, _digest(data), out)
    return out.read_bytes()


def test_g5_body_cap_is_met_by_smaller_chunks(
    proxy_factory,
    registry_http: LocalRegistry,  # noqa: F811
    tmp_path: Path,
) -> None:
    rules = ProxyRules(cap=CAP)
    proxy = proxy_factory(rules)
    data = os.urandom(G5_SIZE)
    with RegistryClient(proxy.url, insecure=True) as client:  # default 8 MiB chunks
        descriptor, sent = client.push_blob("g5/capped", data)
    assert descriptor.digest == _digest(data) and descriptor.size == G5_SIZE
    assert sent == G5_SIZE
    assert rules.refused >= 1  # the first, too large, body was refused ...
    assert max(rules.bodies) <= CAP  # ... and everything that got through was under the cap
    assert _stored(registry_http, "g5/capped", data, tmp_path) == data


def test_g5_configured_chunk_size_never_hits_the_cap(proxy_factory, tmp_path: Path) -> None:
    rules = ProxyRules(cap=CAP)
    proxy = proxy_factory(rules)
    data = os.urandom(G5_SIZE)
    with RegistryClient(proxy.url, insecure=True, chunk_size=CAP) as client:
        _, sent = client.push_blob("g5/chunked", data)
    assert sent == G5_SIZE
    assert rules.refused == 0
    patch_bodies = [b for b in rules.bodies if b > 0]
    assert patch_bodies == [CAP, G5_SIZE - CAP]


def test_registry_reported_range_is_honoured(
    proxy_factory,
    registry_http: LocalRegistry,  # noqa: F811
    tmp_path: Path,
) -> None:
    # The proxy passes on only the first 1 MiB of each 3 MiB chunk; the registry's Range
    # then says how far it really got, and the client must resend from there.
    rules = ProxyRules(truncate_to=1 * MiB)
    proxy = proxy_factory(rules)
    data = os.urandom(G5_SIZE)
    with RegistryClient(proxy.url, insecure=True, chunk_size=3 * MiB) as client:
        _, sent = client.push_blob("g5/truncated", data)
    assert sent == client.bytes_uploaded == G5_SIZE  # only what the registry confirmed counts
    assert rules.patches == 6  # 5 MiB + 7 in 1 MiB steps, not 2 chunks of 3 MiB
    assert _stored(registry_http, "g5/truncated", data, tmp_path) == data


def test_g5_stale_range_gives_a_clear_error_not_an_endless_retry(proxy_factory) -> None:
    rules = ProxyRules(stale_range=True)
    proxy = proxy_factory(rules)
    started = time.monotonic()
    with (
        RegistryClient(proxy.url, insecure=True, chunk_size=1 * MiB) as client,
        pytest.raises(RegistryError, match="keeps reporting upload Range 0-0"),
    ):
        client.push_blob("g5/stale", os.urandom(3 * MiB))
    assert rules.patches == 5
    assert time.monotonic() - started < 10


def test_cross_repository_mount_and_its_fallbacks(
    proxy_factory,
    registry_http: LocalRegistry,  # noqa: F811
    tmp_path: Path,
) -> None:
    data = os.urandom(300 * 1024)
    with RegistryClient(registry_http.url, insecure=True) as client:
        client.push_blob("mount/source", data)
        _, sent = client.push_blob("mount/target", data, mount_from="mount/source")
        assert (sent, client.stats.blobs_mounted) == (0, 1)
        # Nothing to mount there: the registry answers 202 and we upload into that session.
        _, sent = client.push_blob("mount/other", data, mount_from="mount/nowhere")
        assert (sent, client.stats.blobs_mounted) == (len(data), 1)

    proxy = proxy_factory(ProxyRules(refuse_mount=True))
    with RegistryClient(proxy.url, insecure=True) as client:
        _, sent = client.push_blob("mount/refused", data, mount_from="mount/source")
    assert sent == len(data)
    assert _stored(registry_http, "mount/refused", data, tmp_path) == data


def test_5xx_answers_are_retried_and_the_upload_resumes(
    proxy_factory,
    registry_http: LocalRegistry,  # noqa: F811
    tmp_path: Path,
) -> None:
    rules = ProxyRules(fail_every=3)
    proxy = proxy_factory(rules)
    data = os.urandom(6 * MiB + 5)
    with RegistryClient(proxy.url, insecure=True, chunk_size=1 * MiB, backoff=0.01) as client:
        _, sent = client.push_blob("retry/five-hundred", data)
        assert client.stats.retries >= 2
    assert sent == len(data)
    assert _stored(registry_http, "retry/five-hundred", data, tmp_path) == data


def test_lost_answer_to_the_final_put_is_not_a_failure(
    proxy_factory,
    registry_http: LocalRegistry,  # noqa: F811
    tmp_path: Path,
) -> None:
    rules = ProxyRules(drop_final_put=1)
    proxy = proxy_factory(rules)
    data = os.urandom(2 * MiB + 3)
    with RegistryClient(proxy.url, insecure=True, chunk_size=1 * MiB, backoff=0.01) as client:
        _, sent = client.push_blob("retry/lost-answer", data)
        assert client.stats.retries >= 1
        assert client.bytes_uploaded == len(data)  # found the blob instead of sending it again
    assert rules.drop_final_put == 0
    assert sent == len(data)
    assert _stored(registry_http, "retry/lost-answer", data, tmp_path) == data
