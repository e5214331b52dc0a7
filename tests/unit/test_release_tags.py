"""Tag and record logic that needs no registry: schemes, fallback tags, records, inputs."""

from __future__ import annotations

import datetime as dt
import json
import os
from pathlib import Path

import pytest

from hepbuild import naming
from hepbuild.build.results import BuiltImage
from hepbuild.config.model import Base, Cell, Recipe, Registry
from hepbuild.errors import ConfigError, UsageError
from hepbuild.files import sha256_digest
from hepbuild.platforms import get_arch
from hepbuild.release.history import TagScheme
from hepbuild.release.publish import Provenance, build_record, load_build_inputs
from hepbuild.release.records import (
    BuildRecord,
    append_jsonl,
    fallback_tag,
    record_file_name,
    referrer_manifest,
    write_json_atomic,
)
from hepbuild.release.store import Manifest
from hepbuild.release.versions import PublishBlocked, publish_image, repository_path

WHEN = dt.datetime(2026, 12, 4, 1, 2, 3, tzinfo=dt.timezone.utc)
DIGEST = "sha256:" + "ab" * 32


def _cell(arch: str = "arm64", version: str = "1.2") -> Cell:
    recipe = Recipe(group="hep", name="root", version=version, directory=Path("."))
    return Cell(recipe, Base(name="el9", family="yum", arches=(arch,), images={}), get_arch(arch))


def _image(cell: Cell, **changes: object) -> BuiltImage:
    values: dict[str, object] = {
        "cell_id": cell.id, "local_ref": "", "pushed_ref": None, "digest": DIGEST, "size": 1,
        "platform": cell.arch.platform, "log": "build/logs/x.log", "seconds": 1.0,
        "test_status": "passed", "content_key": "ck", "base_digest": None,
        "image_key": cell.image_key,
    }
    values.update(changes)
    return BuiltImage(**values)  # type: ignore[arg-type]


def test_tag_scheme_reads_naming_tags() -> None:
    cell, scheme = _cell(), TagScheme("el9")
    dated = naming.dated_tag(cell, WHEN)
    assert dated == "1.2-el9-20261204T010203Z"
    assert scheme.dated_version(dated) == "1.2"
    assert scheme.moving_version(naming.version_tag(cell)) == "1.2"
    assert scheme.latest == naming.latest_tag(cell) == "el9-latest"
    assert scheme.is_arch_tag(naming.arch_tag(cell))
    assert scheme.dated_version(naming.arch_tag(cell)) is None


@pytest.mark.parametrize("tag", ["el9-latest", "1.2-el9-arm64", "1.2-sl7", "sha256-abc"])
def test_version_of_refuses_tags_that_are_not_versions(tag: str) -> None:
    with pytest.raises(UsageError, match="is not a version of this image"):
        TagScheme("el9").version_of(tag)


def test_fallback_tag_follows_the_referrers_tag_schema() -> None:
    assert fallback_tag(DIGEST) == "sha256-" + "ab" * 32
    long = "sha512:" + "c" * 128
    assert fallback_tag(long) == "sha512-" + "c" * 64


def test_referrer_manifest_has_subject_type_and_empty_config() -> None:
    subject = Manifest(b'{"schemaVersion":2}', "application/vnd.oci.image.manifest.v1+json",
                       sha256_digest(b'{"schemaVersion":2}'))
    manifest = referrer_manifest(subject, "application/vnd.hepbuild.build-record.v1+json",
                                 DIGEST, 10, {"k": "v"})
    assert manifest["subject"] == {"mediaType": subject.media_type, "digest": subject.digest,
                                   "size": 19}
    assert manifest["config"] == {"mediaType": "application/vnd.oci.empty.v1+json", "size": 2,
                                  "digest": sha256_digest(b"{}")}
    assert manifest["artifactType"] == "application/vnd.hepbuild.build-record.v1+json"
    assert manifest["layers"][0]["digest"] == DIGEST


def test_build_record_round_trips_and_names_its_file(tmp_path: Path) -> None:
    cell = _cell()
    sif = tmp_path / "x.sif"
    sif.write_bytes(b"abc")
    layout, sandbox = tmp_path / "x.oci", tmp_path / "x.sandbox"
    layout.mkdir()
    sandbox.mkdir()
    # An OCI layout is a directory too; only the .sandbox output is the sandbox.
    outputs = [str(layout), str(sif), str(sif) + ".sha256", str(sandbox)]
    record = build_record(cell, _image(cell), outputs, Provenance("ci", "deadbeef", WHEN))
    abc_sha256 = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
    assert record.sif_sha256 == "sha256:" + abc_sha256
    assert record.sif_md5 == "900150983cd24fb0d6963f7d28e17f72"
    assert record.sandbox_path == str(sandbox)
    assert record.build_time == "2026-12-04T01:02:03Z"
    assert BuildRecord.from_json(record.to_json(), "test") == record
    assert record_file_name(cell.id) == "hep__root-el9-arm64.json"


def test_unknown_record_schema_is_refused() -> None:
    from hepbuild.errors import ImageError

    with pytest.raises(ImageError, match="unknown schema"):
        BuildRecord.from_json(b'{"schema": 99}', "r")


def test_atomic_write_leaves_no_temp_files(tmp_path: Path) -> None:
    target = tmp_path / "records" / "a.json"
    write_json_atomic(target, b"{}\n")
    write_json_atomic(target, b'{"b": 1}\n')
    assert target.read_bytes() == b'{"b": 1}\n'
    assert os.listdir(target.parent) == ["a.json"]


def test_rollback_log_appends_lines(tmp_path: Path) -> None:
    log = tmp_path / "rollbacks.jsonl"
    append_jsonl(log, {"n": 1})
    append_jsonl(log, {"n": 2})
    assert [json.loads(x)["n"] for x in log.read_text().splitlines()] == [1, 2]


def test_failed_arch_blocks_before_any_registry_call() -> None:
    good, bad = _cell("x86_64"), _cell("arm64")
    pairs = [(good, _image(good)), (bad, _image(bad, status="failed", error="qemu crashed"))]
    registry = Registry(name="r", url="127.0.0.1:1", insecure=True)
    with pytest.raises(PublishBlocked, match=r"hep/root-el9-arm64 \(arm64\): failed - qemu"):
        publish_image(None, pairs, WHEN, registry=registry)  # type: ignore[arg-type]


def test_publish_refuses_mixed_images() -> None:
    one, other = _cell("x86_64", "1.0"), _cell("arm64", "1.0")
    other = Cell(Recipe(group="hep", name="geant4", version="1", directory=Path(".")),
                 other.base, other.arch)
    with pytest.raises(UsageError, match="one image"):
        publish_image(None, [(one, _image(one)), (other, _image(other))], WHEN,  # type: ignore[arg-type]
                      registry=Registry(name="r", url="h"))


def test_repository_path_strips_the_host_only() -> None:
    registry = Registry(name="h", url="harbor.example/ns", project="hep")
    full = naming.repository(registry, _cell().recipe)
    assert full == "harbor.example/ns/hep/hep/root"
    assert repository_path(registry, full) == "ns/hep/hep/root"


def test_build_results_errors_name_the_file(tmp_path: Path) -> None:
    bad = tmp_path / "results.json"
    bad.write_text('{"images": [{"status": "built"}]}')
    with pytest.raises(ConfigError) as caught:
        load_build_inputs(bad)
    assert f"{bad}: images[0] lacks cell_id or status" in caught.value.render()
    bad.write_text("{not json")
    with pytest.raises(ConfigError, match="1 problem"):
        load_build_inputs(bad)


def test_build_results_are_read_with_defaults(tmp_path: Path) -> None:
    path = tmp_path / "results.json"
    path.write_text(json.dumps({"images": [{"cell_id": "hep/root-el9-arm64", "status": "built",
                                            "digest": DIGEST, "extra_field": 1}],
                                "outputs": {"hep/root-el9-arm64": ["dist/a.sif"]}}))
    inputs = load_build_inputs(path)
    assert inputs.images[0].digest == DIGEST
    assert inputs.images[0].test_status == "none"
    assert inputs.outputs == {"hep/root-el9-arm64": ["dist/a.sif"]}


MINIMAL = Path(__file__).resolve().parent.parent / "data" / "recipes" / "minimal"


def test_publish_names_its_positional_cell_argument_not_select(
        capsys: pytest.CaptureFixture[str]) -> None:
    from hepbuild.cli import main

    cwd = os.getcwd()
    try:
        code = main(["-C", str(MINIMAL), "publish", "nomatch/*"])
    finally:
        os.chdir(cwd)
    err = capsys.readouterr().err
    assert code == 2
    assert "CELL argument 'nomatch/*' matches no cell" in err
    assert "--select" not in err
    assert "Traceback" not in err
