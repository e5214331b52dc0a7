"""A tiny token service that behaves like Harbor's ``/service/token`` for local tests.

It checks Basic credentials against a user table and issues RS256 JWTs that the Distribution
registry verifies through the ``x5c`` certificate in the header (``auth.token`` config).
"""

from __future__ import annotations

import base64
import binascii
import hmac
import json
import ssl
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

from hepbuild.registry import pki

SERVICE = "harbor-registry"
ISSUER = "hepbuild-local-token-issuer"
TOKEN_LIFETIME = 1800


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def parse_scope(scope: str) -> dict[str, object] | None:
    """``repository:p/r:pull,push`` -> an access entry. The name itself may hold colons."""
    kind, sep, rest = scope.partition(":")
    name, sep2, actions = rest.rpartition(":")
    if not (sep and sep2 and kind and name):
        return None
    return {"type": kind, "name": name, "actions": [a for a in actions.split(",") if a]}


class TokenIssuer:
    def __init__(self, signing_cert: Path, signing_key: Path, users: dict[str, str]) -> None:
        self.signing_key = signing_key
        self.users = dict(users)
        self._x5c = pki.cert_der_base64(signing_cert)
        self.issued = 0

    def check(self, authorization: str | None) -> str | None:
        """The user name if the Basic credential is valid, else None."""
        if not authorization or not authorization.startswith("Basic "):
            return None
        try:
            raw = base64.b64decode(authorization[6:], validate=True).decode()
        except (binascii.Error, UnicodeDecodeError):
            return None
        user, _, password = raw.partition(":")
        expected = self.users.get(user)
        if expected is None or not hmac.compare_digest(expected, password):
            return None
        return user

    def issue(self, user: str, service: str, scopes: list[str]) -> str:
        now = int(time.time())
        header = {"typ": "JWT", "alg": "RS256", "x5c": [self._x5c]}
        access = [entry for s in scopes if (entry := parse_scope(s))]
        claims = {
            "iss": ISSUER,
            "sub": user,
            "aud": service,
            "exp": now + TOKEN_LIFETIME,
            "nbf": now - 10,
            "iat": now,
            "jti": uuid.uuid4().hex,
            "access": access,
        }
        signing_input = (
            f"{_b64url(json.dumps(header).encode())}.{_b64url(json.dumps(claims).encode())}"
        )
        signature = pki.sign_rs256(self.signing_key, signing_input.encode())
        self.issued += 1
        return f"{signing_input}.{_b64url(signature)}"


def _handler_for(issuer: TokenIssuer) -> type[BaseHTTPRequestHandler]:
    class TokenHandler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 - http.server's naming
            url = urlsplit(self.path)
            if url.path != "/service/token":
                self._reply(404, {"errors": [{"code": "NOT_FOUND", "message": "no such path"}]})
                return
            user = issuer.check(self.headers.get("Authorization"))
            if user is None:
                self._reply(
                    401, {"errors": [{"code": "UNAUTHORIZED", "message": "bad credentials"}]}
                )
                return
            query = parse_qs(url.query)
            scopes = [part for value in query.get("scope", []) for part in value.split(" ") if part]
            service = query.get("service", [SERVICE])[0]
            token = issuer.issue(user, service, scopes)
            issued_at = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
            self._reply(200, {"token": token, "expires_in": TOKEN_LIFETIME, "issued_at": issued_at})

        def do_POST(self) -> None:  # noqa: N802
            # Harbor answers POST with 405; clients must use GET.
            self._reply(405, {"errors": [{"code": "METHOD_NOT_ALLOWED", "message": "use GET"}]})

        def _reply(self, status: int, body: dict[str, object]) -> None:
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, format: str, *args: object) -> None:  # noqa: A002
            return  # keep test output quiet; the registry's own log records every request

    return TokenHandler


class TokenServer:
    """Serve tokens over HTTPS on 127.0.0.1 in a background thread."""

    def __init__(self, issuer: TokenIssuer, cert: Path, key: Path, port: int = 0) -> None:
        self.issuer = issuer
        self._httpd = ThreadingHTTPServer(("127.0.0.1", port), _handler_for(issuer))
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(str(cert), str(key))
        self._httpd.socket = context.wrap_socket(self._httpd.socket, server_side=True)
        self._httpd.daemon_threads = True
        self._thread = threading.Thread(target=self._httpd.serve_forever, daemon=True)

    @property
    def port(self) -> int:
        return int(self._httpd.server_address[1])

    @property
    def realm(self) -> str:
        return f"https://127.0.0.1:{self.port}/service/token"

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join(timeout=5)
