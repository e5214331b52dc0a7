"""Throwaway certificates for local registries: a CA, a server cert and a token-signing cert.

Everything is made with openssl through ``hepbuild.tools`` so that no crypto library is needed.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass
from pathlib import Path

from hepbuild import tools


@dataclass(frozen=True)
class LocalPki:
    ca_cert: Path
    server_cert: Path
    server_key: Path
    signing_cert: Path
    signing_key: Path


def _openssl() -> str:
    return tools.find_tool("openssl", version_args=("version",)).path


def make_local_pki(folder: Path) -> LocalPki:
    """Create (once) a CA, a 127.0.0.1 server certificate and a JWT signing certificate."""
    folder.mkdir(parents=True, exist_ok=True)
    pki = LocalPki(
        ca_cert=folder / "ca.pem",
        server_cert=folder / "server.pem",
        server_key=folder / "server.key",
        signing_cert=folder / "token.pem",
        signing_key=folder / "token.key",
    )
    if all(p.exists() for p in (pki.ca_cert, pki.server_cert, pki.signing_cert)):
        return pki

    ca_key = folder / "ca.key"
    _self_signed(ca_key, pki.ca_cert, "hepbuild local CA", ca=True)
    _issued(pki.server_key, pki.server_cert, ca_key, pki.ca_cert)
    # The registry trusts the token issuer through this self-signed cert (rootcertbundle).
    _self_signed(pki.signing_key, pki.signing_cert, "hepbuild token issuer", ca=False)
    return pki


def _self_signed(key: Path, cert: Path, name: str, *, ca: bool) -> None:
    extension = "basicConstraints=critical,CA:TRUE" if ca else "basicConstraints=CA:FALSE"
    _new_certificate(key, cert, name, [extension])


def _issued(key: Path, cert: Path, ca_key: Path, ca_cert: Path) -> None:
    extensions = ["subjectAltName=IP:127.0.0.1,DNS:localhost", "basicConstraints=CA:FALSE"]
    _new_certificate(key, cert, "127.0.0.1", extensions, issuer=(ca_cert, ca_key))


def _new_certificate(
    key: Path,
    cert: Path,
    name: str,
    extensions: list[str],
    issuer: tuple[Path, Path] | None = None,
) -> None:
    """A fresh RSA key and a 30-day certificate for it, self-signed unless ``issuer`` signs."""
    signer = ["-CA", str(issuer[0]), "-CAkey", str(issuer[1])] if issuer else []
    added = [arg for extension in extensions for arg in ("-addext", extension)]
    tools.run(
        [
            _openssl(), "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-sha256",
            "-days", "30", "-subj", f"/CN={name}", *signer, *added,
            "-keyout", str(key), "-out", str(cert),
        ],
        quiet=True,
    )


def cert_der_base64(cert: Path) -> str:
    """The certificate as standard base64 DER, as a JWT ``x5c`` header wants it."""
    lines = cert.read_text().splitlines()
    body = "".join(line for line in lines if line and not line.startswith("-----"))
    return base64.b64encode(base64.b64decode(body)).decode()


def sign_rs256(key: Path, data: bytes) -> bytes:
    """An RSASSA-PKCS1-v1_5 SHA-256 signature of ``data`` (what JWT's RS256 means)."""
    result = tools.run([_openssl(), "dgst", "-sha256", "-sign", key], input=data, quiet=True)
    return result.stdout
