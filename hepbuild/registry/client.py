"""A client for the OCI distribution API (``/v2/``), written on ``requests``.

Why not oras-py: see docs/registry.md. In short, uploads here are chunked with a bounded
buffer, follow the ``Range`` the registry reports (and shrink the chunk when a proxy refuses a
body), resume after dropped connections and 5xx, fall back from a refused cross-repository
mount, and handle Harbor robot names and bearer scopes.
"""

from __future__ import annotations

import hashlib
import json
import queue
import re
import threading
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urljoin

import requests

from hepbuild import output
from hepbuild.errors import AuthError, RegistryError, UsageError
from hepbuild.files import sha256_digest, sha256_file
from hepbuild.registry import media
from hepbuild.registry.auth import Challenge, Credentials, parse_challenge
from hepbuild.registry.reference import DEFAULT_HOST
from hepbuild.tools import redact, register_secret

MiB = 1024 * 1024
DEFAULT_CHUNK = 8 * MiB
MIN_CHUNK = 64 * 1024
READ_BLOCK = 1 * MiB
MAX_STALE = 5  # answers in a row that move the upload nowhere before we give up
TRANSIENT_STATUS = (500, 502, 503, 504)
TRANSIENT_ERRORS = (
    requests.ConnectionError,
    requests.Timeout,
    requests.exceptions.ChunkedEncodingError,
)
DIGEST_RE = re.compile(r"^sha256:[0-9a-f]{64}$")


@dataclass(frozen=True)
class Descriptor:
    media_type: str
    digest: str
    size: int
    annotations: dict[str, str] | None = None
    platform: dict[str, str] | None = None
    data: str | None = None
    artifact_type: str | None = None

    def to_json(self) -> dict[str, Any]:
        """Field order as go-containerregistry writes it (it decides the manifest digest)."""
        out: dict[str, Any] = {
            "mediaType": self.media_type,
            "size": self.size,
            "digest": self.digest,
        }
        if self.data is not None:
            out["data"] = self.data
        if self.annotations:
            out["annotations"] = dict(sorted(self.annotations.items()))
        if self.platform:
            out["platform"] = self.platform
        if self.artifact_type:
            out["artifactType"] = self.artifact_type
        return out

    @classmethod
    def from_json(cls, value: dict[str, Any]) -> Descriptor:
        return cls(
            media_type=str(value.get("mediaType", "")),
            digest=str(value.get("digest", "")),
            size=int(value.get("size", 0)),
            annotations=value.get("annotations"),
            platform=value.get("platform"),
            data=value.get("data"),
            artifact_type=value.get("artifactType"),
        )


@dataclass(frozen=True)
class Manifest:
    data: bytes
    media_type: str
    digest: str

    def json(self) -> dict[str, Any]:
        return json.loads(self.data)

    @property
    def is_index(self) -> bool:
        return self.media_type in media.INDEX_TYPES


@dataclass
class UploadStats:
    blobs_uploaded: int = 0
    blobs_skipped: int = 0
    blobs_mounted: int = 0
    retries: int = 0


class _BackgroundHasher:
    """sha256 in a worker thread (hashlib drops the GIL), so hashing overlaps the download.
    The queue is bounded, which bounds memory to a few blocks."""

    def __init__(self) -> None:
        self._hash = hashlib.sha256()
        self._queue: queue.Queue[bytes | None] = queue.Queue(maxsize=8)
        self._thread = threading.Thread(target=self._work, daemon=True)
        self._thread.start()

    def _work(self) -> None:
        while (block := self._queue.get()) is not None:
            self._hash.update(block)

    def update(self, block: bytes) -> None:
        self._queue.put(block)

    def finish(self) -> str:
        self._queue.put(None)
        self._thread.join()
        return "sha256:" + self._hash.hexdigest()


class RegistryUnreachable(RegistryError):
    """The connection failed (refused, dropped, timed out) after the allowed retries."""


class _UploadLost(Exception):
    """The registry forgot the upload session (restart, purge): start a new one."""


def sha256_of(source: Path | bytes) -> tuple[str, int]:
    if isinstance(source, bytes):
        return sha256_digest(source), len(source)
    return sha256_file(source), Path(source).stat().st_size


def _read_range(source: Path | bytes, offset: int, length: int) -> bytes:
    if isinstance(source, bytes):
        return source[offset : offset + length]
    with open(source, "rb") as fh:
        fh.seek(offset)
        return fh.read(length)


def parse_range_end(header: str | None) -> int | None:
    """Next offset from ``Range: 0-N``. Distribution reports ``0-0`` for an empty upload too;
    our chunks are never a lone first byte, so ``0-0`` is read as nothing received."""
    match = re.fullmatch(r"(?:bytes=)?0-(\d+)", (header or "").strip())
    if not match:
        return None
    end = int(match.group(1))
    return 0 if end == 0 else end + 1


class RegistryClient:
    """Talk to one registry host. Thread-unsafe; make one per thread."""

    def __init__(
        self,
        host: str,
        *,
        insecure: bool = False,
        ca_file: str | None = None,
        credentials: Credentials | None = None,
        chunk_size: int = DEFAULT_CHUNK,
        retries: int = 6,
        backoff: float = 0.25,
        timeout: float = 120.0,
    ) -> None:
        if chunk_size < MIN_CHUNK:
            raise RegistryError(
                f"chunk size {chunk_size} is too small", f"use at least {MIN_CHUNK} bytes"
            )
        if insecure and host == DEFAULT_HOST:
            # Plain HTTP to Docker Hub is never what was meant; it is what a mistyped
            # reference (no repository after host:port) used to turn into.
            raise UsageError(
                f"--insecure (plain HTTP) is refused for {DEFAULT_HOST}",
                "name your own registry in full: docker://HOST:PORT/PROJECT/NAME:TAG",
            )
        self.host = host
        self.insecure = insecure
        self.base = f"{'http' if insecure else 'https'}://{host}"
        self.credentials = credentials
        self.chunk_size = chunk_size
        self.retries = retries
        self.backoff = backoff
        self.timeout = timeout
        self.bytes_uploaded = 0
        self.stats = UploadStats()
        self._session = requests.Session()
        self._session.verify = str(ca_file) if ca_file else True
        self._session.trust_env = False  # loopback registries must not go through a proxy
        self._tokens: dict[frozenset[str], str] = {}
        self._bearer: Challenge | None = None
        self._use_basic = False
        self._reached = False  # has any request ever got an answer?

    def close(self) -> None:
        self._session.close()

    def __enter__(self) -> RegistryClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- requests, retries, auth -------------------------------------------------------------

    def _url(self, path_or_url: str) -> str:
        return (
            path_or_url
            if "://" in path_or_url
            else urljoin(self.base + "/", path_or_url.lstrip("/"))
        )

    def _request(
        self,
        method: str,
        path_or_url: str,
        scopes: Sequence[str],
        *,
        headers: dict[str, str] | None = None,
        data: bytes | None = None,
        params: dict[str, str] | None = None,
        stream: bool = False,
        retry: bool = True,
    ) -> requests.Response:
        """One call with auth; transient failures retried (with back-off) when ``retry``."""
        url = self._url(path_or_url)
        auth_rounds = 0
        attempt = 0
        while True:
            all_headers = dict(headers or {})
            authorization = self._authorization(scopes)
            if authorization:
                all_headers["Authorization"] = authorization
            try:
                response = self._session.request(
                    method,
                    url,
                    headers=all_headers,
                    data=data,
                    params=params,
                    stream=stream,
                    timeout=(10, self.timeout),
                    allow_redirects=True,
                )
            except requests.exceptions.SSLError as exc:
                raise _tls_error(self, exc) from None
            except TRANSIENT_ERRORS as exc:
                # A registry never reached yet is likely a typo or not started: fail fast.
                allowed = self.retries if self._reached else min(2, self.retries)
                if not retry or attempt >= allowed:
                    raise RegistryUnreachable(
                        f"cannot reach {self.host}: {method} {_path(url)} failed: "
                        f"{type(exc).__name__}",
                        _reach_hint(self),
                    ) from None
                attempt = self._pause(attempt, f"{method} {_path(url)}: {type(exc).__name__}")
                continue
            self._reached = True
            if response.status_code == 401 and auth_rounds < 2:
                auth_rounds += 1
                response.close()
                self._authenticate(response, scopes)
                continue
            if response.status_code in TRANSIENT_STATUS and retry and attempt < self.retries:
                response.close()
                reason = f"{method} {_path(url)} answered {response.status_code}"
                attempt = self._pause(attempt, reason)
                continue
            return response

    def _pause(self, attempt: int, reason: str) -> int:
        self.stats.retries += 1
        delay = min(4.0, self.backoff * (2**attempt))
        output.warn(f"{self.host}: {reason}; retrying in {delay:.1f} s")
        time.sleep(delay)
        return attempt + 1

    def _authorization(self, scopes: Sequence[str]) -> str | None:
        if self._use_basic and self.credentials:
            return self.credentials.basic_header
        token = self._tokens.get(frozenset(scopes))
        return f"Bearer {token}" if token else None

    def _authenticate(self, response: requests.Response, scopes: Sequence[str]) -> None:
        challenge = parse_challenge(response.headers.get("WWW-Authenticate", ""))
        if challenge is None:
            raise AuthError(f"{self.host} answered 401 without saying how to authenticate")
        if challenge.scheme == "basic":
            if self.credentials is None or self._use_basic:
                raise self._refused()
            self._use_basic = True
            return
        if challenge.scheme != "bearer" or "realm" not in challenge.params:
            raise AuthError(f"{self.host} asks for unsupported authentication {challenge.scheme!r}")
        self._bearer = challenge
        self._tokens[frozenset(scopes)] = self._fetch_token(challenge, [*scopes, *challenge.scopes])

    def _fetch_token(self, challenge: Challenge, scopes: Iterable[str]) -> str:
        """GET the token endpoint (Harbor answers POST with 405), scopes space-separated."""
        params = {"service": challenge.params.get("service", "")}
        wanted = sorted(set(scopes))
        if wanted:
            params["scope"] = " ".join(wanted)
        headers = {"Authorization": self.credentials.basic_header} if self.credentials else {}
        try:
            reply = self._session.get(
                challenge.params["realm"], params=params, headers=headers, timeout=(10, 60)
            )
        except TRANSIENT_ERRORS as exc:
            raise AuthError(
                f"cannot reach the token service of {self.host}: {type(exc).__name__}"
            ) from None
        if reply.status_code in (401, 403):
            raise self._refused()
        if reply.status_code != 200:
            raise AuthError(f"the token service of {self.host} answered {reply.status_code}")
        try:
            body = reply.json()
            token = str(body.get("token") or body.get("access_token"))
        except (ValueError, AttributeError):
            raise AuthError(f"the token service of {self.host} sent no token") from None
        register_secret(token)
        return token

    def _refused(self) -> AuthError:
        if self.credentials is None:
            return AuthError(
                f"{self.host} needs credentials",
                "log in (podman login / docker login) or set HEPBUILD_REGISTRY_USER and "
                "HEPBUILD_REGISTRY_PASSWORD_FILE",
            )
        return AuthError(
            f"{self.host} refused the credentials of {self.credentials.username!r} "
            f"(from {self.credentials.source})",
            "check the user or robot name and its secret, and that it may push to this project",
        )

    def _fail(self, response: requests.Response, what: str) -> RegistryError:
        detail = _registry_message(response)
        text = f"{what}: {self.host} answered {response.status_code}{detail}"
        if response.status_code in (401, 403):
            return AuthError(text, "the account lacks the permission for this repository")
        return RegistryError(redact(text))

    # -- manifests ---------------------------------------------------------------------------

    def get_manifest(
        self, repo: str, ref: str, accept: Sequence[str] = media.MANIFEST_TYPES
    ) -> Manifest:
        response = self._request(
            "GET", f"/v2/{repo}/manifests/{ref}", _pull(repo), headers={"Accept": ", ".join(accept)}
        )
        if response.status_code == 404:
            raise RegistryError(
                f"{self.host}/{repo}:{ref} does not exist",
                "check the repository and tag (list tags with skopeo list-tags)",
            )
        if response.status_code != 200:
            raise self._fail(response, f"cannot read manifest {repo}:{ref}")
        data = response.content
        digest = sha256_digest(data)
        if DIGEST_RE.match(ref) and digest != ref:
            raise RegistryError(f"{self.host}/{repo}@{ref}: the manifest has digest {digest}")
        media_type = response.headers.get("Content-Type", "").split(";")[0].strip()
        media_type = media_type or json.loads(data).get("mediaType", "")
        return Manifest(data, media_type, digest)

    def manifest_exists(self, repo: str, ref: str) -> str | None:
        """The digest behind ``ref``, or None."""
        response = self._request(
            "HEAD",
            f"/v2/{repo}/manifests/{ref}",
            _pull(repo),
            headers={"Accept": ", ".join(media.MANIFEST_TYPES)},
        )
        if response.status_code == 404:
            return None
        if response.status_code != 200:
            raise self._fail(response, f"cannot check manifest {repo}:{ref}")
        return response.headers.get("Docker-Content-Digest")

    def put_manifest(self, repo: str, ref: str, data: bytes, media_type: str) -> str:
        digest = sha256_digest(data)
        response = self._request(
            "PUT",
            f"/v2/{repo}/manifests/{ref}",
            _push(repo),
            headers={"Content-Type": media_type},
            data=data,
        )
        if response.status_code not in (200, 201, 202):
            raise self._fail(response, f"cannot store manifest {repo}:{ref}")
        reported = response.headers.get("Docker-Content-Digest")
        if reported and reported != digest:
            raise RegistryError(
                f"{self.host} stored {repo}:{ref} as {reported}, but we sent {digest}"
            )
        return digest

    def delete_manifest(self, repo: str, digest: str) -> None:
        response = self._request("DELETE", f"/v2/{repo}/manifests/{digest}", _delete(repo))
        if response.status_code not in (200, 202, 404):
            raise self._fail(response, f"cannot delete {repo}@{digest}")

    def list_tags(self, repo: str) -> list[str]:
        tags: list[str] = []
        path: str | None = f"/v2/{repo}/tags/list"
        while path:
            response = self._request("GET", path, _pull(repo))
            if response.status_code == 404:
                return []
            if response.status_code != 200:
                raise self._fail(response, f"cannot list tags of {repo}")
            tags += response.json().get("tags") or []
            path = _next_link(response)
        return sorted(tags)

    def referrers(
        self, repo: str, digest: str, artifact_type: str | None = None
    ) -> list[Descriptor]:
        """Manifests whose ``subject`` is ``digest`` (API, or the ``sha256-<hex>`` tag fallback)."""
        params = {"artifactType": artifact_type} if artifact_type else None
        response = self._request(
            "GET",
            f"/v2/{repo}/referrers/{digest}",
            _pull(repo),
            headers={"Accept": media.OCI_INDEX},
            params=params,
        )
        if response.status_code == 200 and "json" in response.headers.get("Content-Type", ""):
            found = [Descriptor.from_json(m) for m in response.json().get("manifests", [])]
            filtered = "artifactType" in response.headers.get("OCI-Filters-Applied", "")
        else:
            found = self._referrers_from_tag(repo, digest)
            filtered = False
        if artifact_type and not filtered:
            found = [d for d in found if d.artifact_type == artifact_type]
        return found

    def _referrers_from_tag(self, repo: str, digest: str) -> list[Descriptor]:
        if self.manifest_exists(repo, referrers_tag(digest)) is None:
            return []
        index = self.get_manifest(repo, referrers_tag(digest), accept=[media.OCI_INDEX]).json()
        return [Descriptor.from_json(m) for m in index.get("manifests", [])]

    # -- blobs -------------------------------------------------------------------------------

    def blob_exists(self, repo: str, digest: str) -> bool:
        response = self._request("HEAD", f"/v2/{repo}/blobs/{digest}", _pull(repo))
        if response.status_code == 200:
            return True
        if response.status_code == 404:
            return False
        raise self._fail(response, f"cannot check blob {digest} in {repo}")

    def get_blob(self, repo: str, digest: str, dest: Path) -> int:
        """Stream a blob to ``dest`` (via a temp name), checking its digest. Returns its size."""
        dest = Path(dest)
        tmp = dest.with_name(f".{dest.name}.part")
        response = self._request("GET", f"/v2/{repo}/blobs/{digest}", _pull(repo), stream=True)
        if response.status_code != 200:
            raise self._fail(response, f"cannot download blob {digest} from {repo}")
        hasher = _BackgroundHasher()
        size = 0
        try:
            with open(tmp, "wb") as fh:
                for block in response.iter_content(READ_BLOCK):
                    hasher.update(block)
                    fh.write(block)
                    size += len(block)
        except TRANSIENT_ERRORS:
            tmp.unlink(missing_ok=True)
            raise RegistryError(f"the download of {digest} from {self.host} broke off") from None
        finally:
            got = hasher.finish()
        if got != digest:
            tmp.unlink(missing_ok=True)
            raise RegistryError(
                f"blob {digest} from {self.host}/{repo} has the wrong content",
                "the registry's storage may be damaged",
            )
        tmp.replace(dest)
        return size

    def get_blob_bytes(self, repo: str, digest: str, limit: int = 4 * MiB) -> bytes:
        response = self._request("GET", f"/v2/{repo}/blobs/{digest}", _pull(repo))
        if response.status_code != 200:
            raise self._fail(response, f"cannot download blob {digest} from {repo}")
        data = response.content[: limit + 1]
        if len(data) > limit or sha256_digest(data) != digest:
            raise RegistryError(f"blob {digest} from {self.host}/{repo} is not what was expected")
        return data

    def push_blob(
        self,
        repo: str,
        source: Path | bytes,
        digest: str | None = None,
        mount_from: str | None = None,
    ) -> tuple[Descriptor, int]:
        """Upload unless present; returns the descriptor and the bytes actually sent."""
        if digest is None:
            digest, size = sha256_of(source)
        else:
            size = len(source) if isinstance(source, bytes) else Path(source).stat().st_size
        descriptor = Descriptor(media.OCTET_STREAM, digest, size)
        if self.blob_exists(repo, digest):
            self.stats.blobs_skipped += 1
            _report_blob(repo, descriptor, "already there")
            return descriptor, 0
        location = None
        if mount_from and mount_from != repo:
            mounted, location = self._try_mount(repo, digest, mount_from)
            if mounted:
                self.stats.blobs_mounted += 1
                _report_blob(repo, descriptor, f"mounted from {mount_from}")
                return descriptor, 0
        sent = self._upload(repo, source, digest, size, location)
        self.stats.blobs_uploaded += 1
        _report_blob(repo, descriptor, "uploaded")
        return descriptor, sent

    def _try_mount(self, repo: str, digest: str, source_repo: str) -> tuple[bool, str | None]:
        """Cross-repository mount. 202 means the registry opened an upload instead."""
        scopes = [*_push(repo), f"repository:{source_repo}:pull"]
        response = self._request(
            "POST",
            f"/v2/{repo}/blobs/uploads/",
            scopes,
            params={"mount": digest, "from": source_repo},
        )
        if response.status_code == 201:
            return True, None
        if response.status_code == 202 and response.headers.get("Location"):
            return False, self._url_from(response)
        return False, None  # refused (no rights on the source, unsupported): upload normally

    def _upload(
        self, repo: str, source: Path | bytes, digest: str, size: int, location: str | None
    ) -> int:
        for _session in range(3):
            location = location or self._start_upload(repo)
            try:
                return self._send(repo, location, source, digest, size)
            except _UploadLost:
                # The session is gone; if that is because our final PUT did land (its answer
                # was lost with the connection), the blob is there and we are done.
                if self.blob_exists(repo, digest):
                    return size
                location = None
        raise RegistryError(
            f"{self.host} lost the upload of {digest} three times",
            "the registry may be restarting in a loop; check its log",
        )

    def _start_upload(self, repo: str) -> str:
        response = self._request("POST", f"/v2/{repo}/blobs/uploads/", _push(repo))
        if response.status_code != 202 or not response.headers.get("Location"):
            raise self._fail(response, f"cannot start an upload to {repo}")
        return self._url_from(response)

    def _url_from(self, response: requests.Response) -> str:
        return urljoin(response.url, response.headers["Location"])

    def _send(self, repo: str, location: str, source: Path | bytes, digest: str, size: int) -> int:
        scopes = _push(repo)
        chunk = self.chunk_size
        if 0 < size <= chunk:
            done, location, chunk = self._send_whole(scopes, location, source, digest, size)
            if done:
                return size
        state = _ChunkState(location=location, offset=0, chunk=chunk)
        sent = 0
        while state.offset < size:
            sent += self._send_chunk(scopes, state, source, size)
        self._finish(scopes, state, digest)
        return sent

    def _send_whole(
        self, scopes: Sequence[str], location: str, source: Path | bytes, digest: str, size: int
    ) -> tuple[bool, str, int]:
        """Monolithic PUT for a small blob. A refused body (proxy cap) falls back to chunks."""
        data = _read_range(source, 0, size)
        try:
            response = self._request(
                "PUT",
                _with_digest(location, digest),
                scopes,
                data=data,
                headers={"Content-Type": media.OCTET_STREAM},
                retry=False,
            )
        except RegistryUnreachable:
            return False, location, max(MIN_CHUNK, size // 2)
        if response.status_code == 201:
            self._check_stored(response, digest)
            self.bytes_uploaded += size
            return True, location, self.chunk_size
        if response.status_code in (413, 416) or response.status_code in TRANSIENT_STATUS:
            return False, location, max(MIN_CHUNK, _halve(size))
        if response.status_code == 404:
            raise _UploadLost()
        raise self._fail(response, f"cannot upload blob {digest}")

    def _send_chunk(
        self, scopes: Sequence[str], state: _ChunkState, source: Path | bytes, size: int
    ) -> int:
        data = _read_range(source, state.offset, min(state.chunk, size - state.offset))
        end = state.offset + len(data) - 1
        headers = {"Content-Type": media.OCTET_STREAM, "Content-Range": f"{state.offset}-{end}"}
        try:
            response = self._request(
                "PATCH", state.location, scopes, headers=headers, data=data, retry=False
            )
        except RegistryUnreachable:
            self._recover(scopes, state)
            return 0
        status = response.status_code
        if status == 202:
            reported = parse_range_end(response.headers.get("Range"))
            state.location = (
                self._url_from(response) if response.headers.get("Location") else state.location
            )
            return self._advance(state, reported if reported is not None else end + 1, len(data))
        if status in (413, 416):
            # Body too large for a proxy, or an offset the registry disagrees with.
            before = state.offset
            self._query_status(scopes, state)
            if state.offset == before:
                state.chunk = max(MIN_CHUNK, _halve(state.chunk))
                self._stale(state)
            return 0
        if status in TRANSIENT_STATUS:
            self._recover(scopes, state)
            return 0
        if status == 404:
            raise _UploadLost()
        raise self._fail(response, "chunk upload refused")

    def _advance(self, state: _ChunkState, reported: int, length: int) -> int:
        if reported <= state.offset:
            self._stale(state)
            return 0
        state.stale = 0
        state.failures = 0
        sent = reported - state.offset
        state.offset = reported
        self.bytes_uploaded += sent
        return min(sent, length)

    def _stale(self, state: _ChunkState) -> None:
        state.stale += 1
        if state.stale >= MAX_STALE:
            raise RegistryError(
                f"{self.host} keeps reporting upload Range 0-{max(state.offset - 1, 0)} and "
                f"accepts nothing more ({state.stale} answers in a row)",
                "a proxy in front of the registry may cap request bodies or break chunked "
                "uploads; try a smaller --chunk-size or push directly to the registry",
            )

    def _recover(self, scopes: Sequence[str], state: _ChunkState) -> None:
        """After a dropped connection or a 5xx: wait, then resume where the registry stands."""
        state.failures += 1
        if state.failures > self.retries:
            raise RegistryError(
                f"the upload to {self.host} kept failing ({state.failures} attempts)",
                _reach_hint(self),
            )
        self._pause(state.failures - 1, "the upload was interrupted")
        self._query_status(scopes, state)

    def _query_status(self, scopes: Sequence[str], state: _ChunkState) -> None:
        try:
            response = self._request("GET", state.location, scopes)
        except RegistryUnreachable:
            return  # still unreachable; the next attempt will try again
        if response.status_code in (400, 404):
            raise _UploadLost()
        if response.status_code != 204:
            return
        reported = parse_range_end(response.headers.get("Range"))
        if response.headers.get("Location"):
            state.location = self._url_from(response)
        if reported is not None:
            if reported > state.offset:
                self.bytes_uploaded += reported - state.offset
            state.offset = reported

    def _finish(self, scopes: Sequence[str], state: _ChunkState, digest: str) -> None:
        for _attempt in range(self.retries + 1):
            try:
                response = self._request(
                    "PUT",
                    _with_digest(state.location, digest),
                    scopes,
                    headers={"Content-Length": "0"},
                    retry=False,
                )
            except RegistryUnreachable:
                self._recover(scopes, state)
                continue
            if response.status_code == 201:
                self._check_stored(response, digest)
                return
            if response.status_code in TRANSIENT_STATUS:
                self._recover(scopes, state)
                continue
            if response.status_code == 404:
                raise _UploadLost()
            raise self._fail(response, f"cannot complete the upload of {digest}")
        raise RegistryError(f"cannot complete the upload of {digest} to {self.host}")

    def _check_stored(self, response: requests.Response, digest: str) -> None:
        stored = response.headers.get("Docker-Content-Digest")
        if stored and stored != digest:
            raise RegistryError(f"{self.host} stored the blob as {stored}, expected {digest}")


@dataclass
class _ChunkState:
    location: str
    offset: int
    chunk: int
    stale: int = 0
    failures: int = 0


def _report_blob(repo: str, descriptor: Descriptor, what: str) -> None:
    size = output.human_size(descriptor.size)
    output.info(f"  {repo}: blob {output.short_digest(descriptor.digest)} ({size}) {what}")


def _halve(size: int) -> int:
    return max(1, size // 2)


def _with_digest(location: str, digest: str) -> str:
    return f"{location}{'&' if '?' in location else '?'}digest={digest}"


def _pull(repo: str) -> list[str]:
    return [f"repository:{repo}:pull"]


def _push(repo: str) -> list[str]:
    return [f"repository:{repo}:pull,push"]


def _delete(repo: str) -> list[str]:
    return [f"repository:{repo}:delete,pull,push"]


def referrers_tag(digest: str) -> str:
    algorithm, _, encoded = digest.partition(":")
    return re.sub(r"[^A-Za-z0-9_.-]", "-", f"{algorithm[:32]}-{encoded[:64]}")


def _next_link(response: requests.Response) -> str | None:
    link = response.headers.get("Link", "")
    match = re.search(r'<([^>]+)>\s*;\s*rel="?next"?', link)
    return match.group(1) if match else None


def _path(url: str) -> str:
    return re.sub(r"^[a-z]+://[^/]+", "", url).split("?", 1)[0]


def _registry_message(response: requests.Response) -> str:
    try:
        errors = response.json().get("errors") or []
        messages = [str(e.get("message") or e.get("code")) for e in errors if isinstance(e, dict)]
    except (ValueError, AttributeError):
        messages = []
    return f" ({'; '.join(messages)})" if messages else ""


def _tls_error(client: RegistryClient, exc: Exception) -> RegistryError:
    """A TLS failure is not transient: say what to change instead of retrying."""
    text = str(exc)
    if "CERTIFICATE_VERIFY_FAILED" in text:
        return RegistryError(
            f"the certificate of {client.host} is not trusted",
            "give the CA that signed it with --ca-file PEM",
        )
    return RegistryError(
        f"TLS with {client.host} failed ({type(exc).__name__})",
        "if it speaks plain HTTP (a local registry), use --insecure",
    )


def _reach_hint(client: RegistryClient) -> str:
    scheme = "plain HTTP" if client.insecure else "HTTPS"
    return f"is the registry at {client.host} running and speaking {scheme}?"
