"""Harbor's REST API (v2.0), the parts a CI pusher needs: projects, labels, scans.

Only Harbor-specific calls live here; images themselves travel over the distribution API
(``registry.client``). Every request carries a fresh ``X-Request-Id`` so a failure can be
found in Harbor's own logs, and the password is registered as a secret before first use.
"""

from __future__ import annotations

import re
import time
import uuid
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any, Protocol
from urllib.parse import quote, urljoin, urlsplit

import requests

from hepbuild.config.model import Registry
from hepbuild.errors import AuthError, RegistryError, UsageError
from hepbuild.output import warn
from hepbuild.tools import register_secret

# Harbor's own severity codes (src/pkg/scan/vuln/severity.go); an unknown string ranks 99.
SEVERITY_RANK: dict[str, int] = {
    "none": 0,
    "unknown": 0,
    "negligible": 1,
    "low": 2,
    "medium": 3,
    "high": 4,
    "critical": 5,
}
UNKNOWN_SEVERITY_RANK = 99

# Report MIME types in the order Harbor's default X-Accept-Vulnerabilities prefers them.
REPORT_MIME_TYPES: tuple[str, ...] = (
    "application/vnd.security.vulnerability.report; version=1.1",
    "application/vnd.scanner.adapter.vuln.report.harbor+json; version=1.0",
)

FINISHED_SCAN_STATES = frozenset({"Success", "Error", "Stopped"})

_LINK_NEXT = re.compile(r'<([^>]+)>\s*;\s*rel="?next"?')
_MAX_PAGES = 1000  # a server that keeps sending rel=next must not keep us forever


class HarborRequestError(RegistryError):
    """Harbor answered a request with a status we did not expect."""

    def __init__(self, message: str, status: int, hint: str | None = None) -> None:
        super().__init__(message, hint)
        self.status = status


class BasicCredentials(Protocol):
    """Anything with a user (or robot, ``robot$proj+name``) and its secret."""

    @property
    def username(self) -> str: ...

    @property
    def password(self) -> str: ...


@dataclass(frozen=True)
class ScanSummary:
    """One scanner report summary, as Harbor puts it in ``scan_overview``."""

    mime_type: str
    status: str
    severity: str
    total: int
    fixable: int
    counts: dict[str, int]
    scanner: str


def severity_rank(severity: str) -> int:
    return SEVERITY_RANK.get(severity.strip().lower(), UNKNOWN_SEVERITY_RANK)


def parse_scan_overview(overview: Mapping[str, Any] | None) -> ScanSummary | None:
    """Pick the report Harbor would pick (first known MIME type, else the first present)."""
    if not overview:
        return None
    chosen = next((m for m in REPORT_MIME_TYPES if m in overview), next(iter(overview)))
    report = overview[chosen] or {}
    summary = report.get("summary") or {}
    scanner = report.get("scanner") or {}
    return ScanSummary(
        mime_type=chosen,
        status=str(report.get("scan_status") or "Unknown"),
        severity=str(report.get("severity") or "Unknown"),
        total=int(summary.get("total") or 0),
        fixable=int(summary.get("fixable") or 0),
        counts={str(k): int(v) for k, v in (summary.get("summary") or {}).items()},
        scanner=" ".join(str(scanner[k]) for k in ("name", "version") if scanner.get(k)),
    )


def scan_gate(overview: ScanSummary | None, max_severity: str) -> None:
    """Fail unless a finished scan found nothing worse than ``max_severity``."""
    if max_severity.strip().lower() not in SEVERITY_RANK:
        known = ", ".join(s.capitalize() for s in SEVERITY_RANK)
        raise UsageError(f"unknown severity {max_severity!r}", f"use one of: {known}")
    if overview is None:
        raise RegistryError("the artifact has no vulnerability scan", "trigger a scan first")
    if overview.status != "Success":
        raise RegistryError(
            f"the vulnerability scan is not finished (status {overview.status})",
            "wait for the scan to reach Success, then check again",
        )
    if severity_rank(overview.severity) > severity_rank(max_severity):
        counts = ", ".join(f"{k} {v}" for k, v in sorted(overview.counts.items())) or "none"
        raise RegistryError(
            f"vulnerability gate failed: severity {overview.severity} is above {max_severity} "
            f"({overview.total} found, {overview.fixable} fixable; {counts})",
            "update the packages in the recipe, or raise the allowed severity",
        )


def encode_repository(repository: str) -> str:
    """Harbor wants ``a/b`` as ``a%252Fb``: URL-encoded twice."""
    return quote(quote(repository, safe=""), safe="")


def split_repository(registry: Registry, repository: str) -> tuple[str, str]:
    """``host/project/group/name`` -> (``project``, ``group/name``)."""
    host = registry.url.rstrip("/")
    path = repository[len(host) + 1 :] if repository.startswith(host + "/") else repository
    project, _, rest = path.partition("/")
    if not project or not rest:
        raise UsageError(
            f"repository {repository!r} has no Harbor project part",
            "set `project:` for the Harbor registry in matrix.yaml",
        )
    return project, rest


def api_root(registry: Registry) -> str:
    if registry.api:
        return registry.api.rstrip("/")
    scheme = "http" if registry.insecure else "https"
    return f"{scheme}://{registry.host}/api/v2.0"


def _next_link(response: requests.Response) -> str | None:
    match = _LINK_NEXT.search(response.headers.get("Link", ""))
    return match.group(1) if match else None


def _selects_tags(rule: Mapping[str, Any], pattern: str) -> bool:
    selectors = rule.get("tag_selectors") or []
    return any(s.get("pattern") == pattern and s.get("decoration") == "matches"
               for s in selectors if isinstance(s, dict))


def _harbor_message(response: requests.Response) -> str:
    try:
        errors = response.json().get("errors") or []
        return "; ".join(str(e.get("message", "")) for e in errors if isinstance(e, dict))
    except (ValueError, AttributeError):
        return response.text[:200].strip()


class HarborClient:
    """Calls against one Harbor's ``/api/v2.0`` root (or a mock serving the same paths)."""

    def __init__(
        self,
        root: str,
        credentials: BasicCredentials | None = None,
        *,
        verify: bool | str = True,
        session: requests.Session | None = None,
        timeout: float = 30.0,
    ) -> None:
        self.root = root.rstrip("/")
        self.session = session or requests.Session()
        self.session.verify = verify
        self.timeout = timeout
        self.last_request_id: str | None = None
        if credentials is not None:
            register_secret(credentials.password)
            self.session.auth = (credentials.username, credentials.password)

    @classmethod
    def for_registry(
        cls, registry: Registry, credentials: BasicCredentials | None = None
    ) -> HarborClient:
        verify: bool | str = registry.ca_file or not registry.insecure
        return cls(api_root(registry), credentials, verify=verify)

    # -- the one place requests are sent --------------------------------------------------

    def request(
        self,
        method: str,
        path: str,
        *,
        ok: tuple[int, ...] = (200,),
        params: Mapping[str, Any] | None = None,
        body: Any = None,
        headers: Mapping[str, str] | None = None,
    ) -> requests.Response:
        url = path if path.startswith(("http://", "https://")) else self.root + path
        request_id = uuid.uuid4().hex
        self.last_request_id = request_id
        all_headers = {"X-Request-Id": request_id, "Accept": "application/json", **(headers or {})}
        try:
            response = self.session.request(
                method, url, params=params, json=body, headers=all_headers, timeout=self.timeout
            )
        except requests.RequestException as exc:
            raise RegistryError(
                f"Harbor at {self.root} could not be reached: {type(exc).__name__}",
                "check the registry's `api:` URL in matrix.yaml and the network",
            ) from None
        if response.status_code not in ok:
            self._raise_for(method, path, response, request_id)
        return response

    def _raise_for(
        self, method: str, path: str, response: requests.Response, request_id: str
    ) -> None:
        what = f"Harbor {method} {path.split('?')[0]} answered {response.status_code}"
        detail = _harbor_message(response)
        message = f"{what}: {detail} (X-Request-Id {request_id})" if detail else what
        if response.status_code == 401:
            raise AuthError(message, "check the Harbor user or robot account and its secret")
        if response.status_code == 403:
            raise HarborRequestError(message, 403, "the account lacks the permission for this")
        raise HarborRequestError(message, response.status_code)

    def paginate(
        self, path: str, params: Mapping[str, Any] | None = None, page_size: int = 100,
        headers: Mapping[str, str] | None = None,
    ) -> Iterator[dict[str, Any]]:
        """Every item of a list endpoint, following ``Link: <...>; rel="next"``."""
        url: str | None = path
        query: Mapping[str, Any] | None = {**(params or {}), "page": 1, "page_size": page_size}
        seen: set[str] = set()
        for _ in range(_MAX_PAGES):
            if url is None:
                return
            response = self.request("GET", url, params=query, headers=headers)
            yield from response.json() or []
            url, query = self._follow(_next_link(response), seen), None
        raise RegistryError(f"Harbor {path} kept sending more pages than {_MAX_PAGES}")

    def _follow(self, link: str | None, seen: set[str]) -> str | None:
        # Harbor sends root-relative links (/api/v2.0/...); anything unparsable ends the list.
        if not link or link in seen or not link.startswith(("/", "http://", "https://")):
            return None
        seen.add(link)
        absolute = urljoin(self.root + "/", link)
        if urlsplit(absolute).netloc != urlsplit(self.root).netloc:
            return None
        prefix = urlsplit(self.root).path
        link_path = urlsplit(absolute).path
        if not link_path.startswith(prefix):
            return None
        return absolute

    # -- projects ------------------------------------------------------------------------

    def project_exists(self, name: str) -> bool:
        response = self.request("HEAD", "/projects", ok=(200, 404), params={"project_name": name})
        return response.status_code == 200

    def create_project(self, name: str, *, public: bool) -> bool:
        """Create the project; False when it already existed (409)."""
        body = {"project_name": name, "metadata": {"public": "true" if public else "false"}}
        response = self.request(
            "POST",
            "/projects",
            ok=(201, 409),
            body=body,
            headers={"X-Resource-Name-In-Location": "true"},
        )
        return response.status_code == 201

    def ensure_project(self, name: str, *, public: bool) -> bool:
        """Make sure the project exists; True when this call created it."""
        if self.project_exists(name):
            return False
        try:
            return self.create_project(name, public=public)
        except HarborRequestError as exc:
            if exc.status == 403:
                raise RegistryError(
                    f"Harbor project {name!r} does not exist and this account may not create it",
                    "ask a Harbor admin to create the project, or use an account with rights",
                ) from None
            raise

    def project_id(self, name: str) -> int:
        response = self.request(
            "GET", f"/projects/{quote(name, safe='')}", headers={"X-Is-Resource-Name": "true"}
        )
        return int(response.json()["project_id"])

    # -- tag immutability ----------------------------------------------------------------

    def ensure_immutable_rule(self, project: str, tag_pattern: str) -> bool:
        """Make tags matching ``tag_pattern`` immutable in the project; True when added."""
        path = f"/projects/{quote(project, safe='')}/immutabletagrules"
        by_name = {"X-Is-Resource-Name": "true"}
        for rule in self.paginate(path, headers=by_name):
            if not rule.get("disabled") and _selects_tags(rule, tag_pattern):
                return False
        body = {
            "disabled": False, "action": "immutable", "template": "immutable_template",
            "tag_selectors": [{"kind": "doublestar", "decoration": "matches",
                               "pattern": tag_pattern}],
            "scope_selectors": {"repository": [{"kind": "doublestar",
                                                "decoration": "repoMatches", "pattern": "**"}]},
        }
        self.request("POST", path, ok=(201,), body=body, headers=by_name)
        return True

    # -- labels --------------------------------------------------------------------------

    def find_label(self, name: str, project_id: int) -> int | None:
        params = {"name": name, "scope": "p", "project_id": project_id}
        for label in self.paginate("/labels", params):
            if label.get("name") == name:
                return int(label["id"])
        return None

    def ensure_label(self, name: str, project_id: int, *, color: str = "#1D5100") -> int:
        found = self.find_label(name, project_id)
        if found is not None:
            return found
        body = {
            "name": name,
            "scope": "p",
            "project_id": project_id,
            "color": color,
            "description": "set by hepbuild",
        }
        response = self.request("POST", "/labels", ok=(201, 409), body=body)
        created = re.search(r"/labels/(\d+)$", response.headers.get("Location", ""))
        if created:
            return int(created.group(1))
        found = self.find_label(name, project_id)
        if found is None:
            raise RegistryError(f"Harbor did not return the id of the new label {name!r}")
        return found

    def attach_label(self, project: str, repository: str, reference: str, label_id: int) -> bool:
        """Attach a label; False when it was attached already (409)."""
        path = self._artifact_path(project, repository, reference) + "/labels"
        response = self.request("POST", path, ok=(200, 409), body={"id": label_id})
        return response.status_code == 200

    # -- artifacts and scans -------------------------------------------------------------

    def _artifact_path(self, project: str, repository: str, reference: str) -> str:
        return (
            f"/projects/{quote(project, safe='')}/repositories/{encode_repository(repository)}"
            f"/artifacts/{quote(reference, safe=':')}"
        )

    def artifact(self, project: str, repository: str, reference: str) -> dict[str, Any]:
        params = {"with_scan_overview": "true", "with_tag": "true", "with_label": "true"}
        headers = {"X-Accept-Vulnerabilities": ", ".join(REPORT_MIME_TYPES)}
        path = self._artifact_path(project, repository, reference)
        data: dict[str, Any] = self.request("GET", path, params=params, headers=headers).json()
        return data

    def scan_overview(self, project: str, repository: str, reference: str) -> ScanSummary | None:
        found = self.artifact(project, repository, reference)
        return parse_scan_overview(found.get("scan_overview"))

    def wait_for_scan(
        self, project: str, repository: str, reference: str, *, timeout: float,
        interval: float = 5.0,
    ) -> ScanSummary | None:
        """Poll the overview until the scan ends (or ``timeout`` seconds pass)."""
        deadline = time.monotonic() + timeout
        while True:
            summary = self.scan_overview(project, repository, reference)
            if summary is not None and summary.status in FINISHED_SCAN_STATES:
                return summary
            if time.monotonic() + interval > deadline:
                status = summary.status if summary else "no report"
                raise RegistryError(
                    f"the scan of {project}/{repository}@{reference} did not finish within "
                    f"{timeout:.0f} s (last status: {status})",
                    "raise --scan-timeout, or check the scanner in Harbor's interrogation services",
                )
            time.sleep(interval)

    def trigger_scan(self, project: str, repository: str, reference: str) -> bool:
        """Ask for a vulnerability scan; False (with a warning) when it is not scannable."""
        path = self._artifact_path(project, repository, reference) + "/scan"
        response = self.request("POST", path, ok=(202, 422), body={"scan_type": "vulnerability"})
        if response.status_code == 422:
            reason = _harbor_message(response) or "not scannable"
            warn(f"Harbor cannot scan {project}/{repository}@{reference}: {reason}")
            return False
        return True
