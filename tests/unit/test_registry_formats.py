"""References, the ORAS manifest bytes, Go-style JSON, Range parsing (no registry needed)."""

from __future__ import annotations

import hashlib
import json

import pytest

from hepbuild.errors import UsageError
from hepbuild.platforms import parse_platform
from hepbuild.registry import media
from hepbuild.registry.client import Descriptor, parse_range_end, referrers_tag
from hepbuild.registry.oras import go_json, platform_json, sif_config_descriptor, sif_manifest
from hepbuild.registry.reference import parse_reference

LAYER = Descriptor(
    media.SIF_LAYER, "sha256:" + "ab" * 32, 29814784, annotations={media.TITLE: "ubuntu_latest.sif"}
)


@pytest.mark.parametrize(
    ("text", "host", "repo", "tag", "digest", "transport"),
    [
        (
            "docker://127.0.0.1:5000/library/x:1.0",
            "127.0.0.1:5000",
            "library/x",
            "1.0",
            None,
            "docker",
        ),
        ("oras://harbor.example/p/r", "harbor.example", "p/r", "latest", None, "oras"),
        ("oras:////harbor.example/p/r:v2", "harbor.example", "p/r", "v2", None, "oras"),
        ("ubuntu", "index.docker.io", "library/ubuntu", "latest", None, "docker"),
        (
            "localhost/a/b@sha256:" + "0" * 64,
            "localhost",
            "a/b",
            None,
            "sha256:" + "0" * 64,
            "docker",
        ),
    ],
)
def test_parse_reference(
    text: str, host: str, repo: str, tag: str | None, digest: str | None, transport: str
) -> None:
    ref = parse_reference(text)
    assert (ref.host, ref.repository, ref.tag, ref.digest, ref.transport) == (
        host,
        repo,
        tag,
        digest,
        transport,
    )


@pytest.mark.parametrize(
    "text", ["ftp://h/r:1", "h.example/Upper:1", "h.example/r:bad tag", "h.example/r@sha256:short"]
)
def test_bad_references_are_usage_errors(text: str) -> None:
    with pytest.raises(UsageError):
        parse_reference(text)


def test_g1_sif_manifest_bytes_match_apptainer() -> None:
    data = sif_manifest(LAYER, "2024-05-01T10:00:00Z")
    expected = (
        '{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json",'
        '"config":{"mediaType":"application/vnd.sylabs.sif.config.v1+json","size":2,'
        '"digest":"sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a",'
        '"data":"e30="},"layers":[{"mediaType":"application/vnd.sylabs.sif.layer.v1.sif",'
        '"size":29814784,"digest":"sha256:' + "ab" * 32 + '",'
        '"annotations":{"org.opencontainers.image.title":"ubuntu_latest.sif"}}],'
        '"annotations":{"org.opencontainers.image.created":"2024-05-01T10:00:00Z"}}'
    )
    assert data.decode() == expected


def test_g2_config_is_never_empty() -> None:
    config = sif_config_descriptor()
    assert config.size == 2
    assert config.digest == "sha256:" + hashlib.sha256(b"{}").hexdigest()


def test_empty_created_label_omits_the_annotation() -> None:
    assert "annotations" not in json.loads(sif_manifest(LAYER, ""))


def test_go_json_escapes_html_characters() -> None:
    assert go_json({"t": "a<b>&c"}) == b'{"t":"a\\u003cb\\u003e\\u0026c"}'


@pytest.mark.parametrize(
    ("arch", "expected"),
    [
        ("arm", {"architecture": "arm", "os": "linux", "variant": "v7"}),
        ("arm64", {"architecture": "arm64", "os": "linux", "variant": "v8"}),
        ("x86_64", {"architecture": "amd64", "os": "linux"}),
        ("x86", {"architecture": "386", "os": "linux"}),
    ],
)
def test_g3_index_entries_carry_arm_variants(arch: str, expected: dict[str, str]) -> None:
    assert platform_json(parse_platform(arch)) == expected


@pytest.mark.parametrize(
    ("header", "offset"),
    [
        ("0-0", 0),
        ("0-1023", 1024),
        ("bytes=0-99", 100),
        (None, None),
        ("junk", None),
    ],
)
def test_range_header(header: str | None, offset: int | None) -> None:
    assert parse_range_end(header) == offset


def test_referrers_fallback_tag() -> None:
    assert referrers_tag("sha256:" + "a" * 64) == "sha256-" + "a" * 64
