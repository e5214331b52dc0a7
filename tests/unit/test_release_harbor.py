"""Harbor client logic: encodings, scan parsing and gate, Link pagination, 403 handling.

Pagination and the 403 answer (which Harbor's spec does not list for POST /projects, so Prism
cannot produce it) are checked against a small HTTP server on 127.0.0.1.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

import pytest

from hepbuild.config.model import Registry
from hepbuild.errors import AuthError, RegistryError, UsageError
from hepbuild.registry.harbor import (
    HarborClient,
    api_root,
    encode_repository,
    parse_scan_overview,
    scan_gate,
    severity_rank,
    split_repository,
)
from hepbuild.tools import redact

V11 = "application/vnd.security.vulnerability.report; version=1.1"
HARBOR_V1 = "application/vnd.scanner.adapter.vuln.report.harbor+json; version=1.0"


def _report(severity: str, status: str = "Success") -> dict[str, object]:
    return {"scan_status": status, "severity": severity,
            "summary": {"total": 3, "fixable": 1, "summary": {"Medium": 2, severity: 1}},
            "scanner": {"name": "Trivy", "version": "0.50"}}


def test_repository_names_are_encoded_twice() -> None:
    assert encode_repository("hep/root") == "hep%252Froot"
    assert encode_repository("a/b/c") == "a%252Fb%252Fc"


def test_split_repository_and_api_root() -> None:
    registry = Registry(name="h", url="harbor.example", kind="harbor", project="hep")
    assert split_repository(registry, "harbor.example/hep/juno/offline") == ("hep", "juno/offline")
    assert api_root(registry) == "https://harbor.example/api/v2.0"
    with pytest.raises(UsageError, match="no Harbor project part"):
        split_repository(registry, "harbor.example/lonely")


def test_severity_order_follows_harbor() -> None:
    ordered = ["None", "Negligible", "Low", "Medium", "High", "Critical"]
    assert [severity_rank(s) for s in ordered] == [0, 1, 2, 3, 4, 5]
    assert severity_rank("Unknown") == 0
    assert severity_rank("Bogus") == 99


def test_overview_prefers_the_first_known_report_type() -> None:
    overview = {HARBOR_V1: _report("Low"), V11: _report("Critical")}
    summary = parse_scan_overview(overview)
    assert summary is not None
    assert (summary.mime_type, summary.severity, summary.scanner) == (V11, "Critical", "Trivy 0.50")
    assert summary.counts == {"Medium": 2, "Critical": 1}


def test_scan_gate() -> None:
    scan_gate(parse_scan_overview({V11: _report("Medium")}), "medium")
    with pytest.raises(RegistryError, match="severity Critical is above High"):
        scan_gate(parse_scan_overview({V11: _report("Critical")}), "High")
    with pytest.raises(RegistryError, match="not finished"):
        scan_gate(parse_scan_overview({V11: _report("None", status="Running")}), "High")
    with pytest.raises(RegistryError, match="no vulnerability scan"):
        scan_gate(None, "High")
    with pytest.raises(UsageError, match="unknown severity"):
        scan_gate(parse_scan_overview({V11: _report("Low")}), "severe")


class _Handler(BaseHTTPRequestHandler):
    """Labels in pages of two with Harbor-style root-relative Link headers; POST /projects 403."""

    labels = [{"id": i, "name": f"l{i}"} for i in range(1, 6)]

    def do_GET(self) -> None:  # noqa: N802 - http.server's naming
        if "/immutabletagrules" in self.path:
            self.send_response(200)
            self._json([{"id": 1, "disabled": False, "tag_selectors": [
                {"kind": "doublestar", "decoration": "matches", "pattern": "*-v?"}]}])
            return
        query = parse_qs(urlsplit(self.path).query)
        page = int(query.get("page", ["1"])[0])
        items = self.labels[(page - 1) * 2 : page * 2]
        self.send_response(200)
        if page * 2 < len(self.labels):
            self.send_header("Link", f'</api/v2.0/labels?page={page + 1}&page_size=2>; rel="next"')
        self._json(items)

    def do_POST(self) -> None:  # noqa: N802
        self.send_response(403 if self.path.startswith("/api/v2.0/projects") else 401)
        self._json({"errors": [{"code": "FORBIDDEN", "message": "forbidden"}]})

    def do_HEAD(self) -> None:  # noqa: N802
        self.send_response(404)
        self.end_headers()

    def _json(self, value: object) -> None:
        body = json.dumps(value).encode()
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        return


@contextmanager
def _serve(handler: type[BaseHTTPRequestHandler]) -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/api/v2.0"
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture()
def harbor_like() -> Iterator[str]:
    with _serve(_Handler) as root:
        yield root


class _Robot:
    username = "robot$hep+ci"
    password = "pw-$ecret-1"


def test_pagination_follows_link_headers(harbor_like: str) -> None:
    client = HarborClient(harbor_like, _Robot())
    assert client.find_label("l5", 1) == 5
    assert [x["id"] for x in client.paginate("/labels", page_size=2)] == [1, 2, 3, 4, 5]


def test_an_existing_immutable_rule_is_not_added_again(harbor_like: str) -> None:
    client = HarborClient(harbor_like, _Robot())
    assert client.ensure_immutable_rule("hep", "*-v?") is False  # a POST here would get 403
    with pytest.raises(RegistryError, match="answered 403"):
        client.ensure_immutable_rule("hep", "*-other")


def test_project_creation_refused_is_a_clear_error(harbor_like: str) -> None:
    client = HarborClient(harbor_like, _Robot())
    with pytest.raises(RegistryError, match="may not create it") as caught:
        client.ensure_project("hep", public=False)
    assert "ask a Harbor admin" in str(caught.value.hint)


def test_refused_credentials_raise_auth_error_without_the_secret(harbor_like: str) -> None:
    client = HarborClient(harbor_like, _Robot())
    with pytest.raises(AuthError) as caught:
        client.ensure_label("new", 1)  # not found on any page -> POST /labels -> 401
    assert "pw-$ecret-1" not in caught.value.render()
    assert redact("login pw-$ecret-1") == "login ***"


def _scan_handler(running_reads: int) -> type[_Handler]:
    """An artifact whose scan is Running for the first reads, then Success."""
    seen = {"reads": 0}

    class ScanHandler(_Handler):
        def do_GET(self) -> None:  # noqa: N802
            seen["reads"] += 1
            status = "Running" if seen["reads"] <= running_reads else "Success"
            self.send_response(200)
            self._json({"digest": "sha256:x", "scan_overview": {V11: _report("Low", status)},
                        "reads": seen["reads"]})

    return ScanHandler


def test_wait_for_scan_polls_until_the_scan_ends() -> None:
    with _serve(_scan_handler(running_reads=2)) as root:
        client = HarborClient(root, _Robot())
        summary = client.wait_for_scan("hep", "a/b", "sha256:x", timeout=5, interval=0.01)
        assert summary is not None and summary.status == "Success"
        assert client.artifact("hep", "a/b", "sha256:x")["reads"] == 4  # 2 Running, 1 Success


def test_wait_for_scan_gives_up_after_the_timeout() -> None:
    with _serve(_scan_handler(running_reads=10**6)) as root:
        client = HarborClient(root, _Robot())
        with pytest.raises(RegistryError, match=r"within 0 s \(last status: Running\)"):
            client.wait_for_scan("hep", "a/b", "sha256:x", timeout=0.001, interval=0.01)
