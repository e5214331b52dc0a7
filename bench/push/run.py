"""Benchmark: push and pull a large SIF with hepbuild, next to skopeo moving the same bytes.

    .venv/bin/python bench/push/run.py [--size-mib 1024] [--runs 1] [--json]

Each tool talks to its own fresh plain-HTTP docker-registry on 127.0.0.1 (so neither finds the
other's blob already there). hepbuild pushes the SIF over ORAS; skopeo copies an OCI layout
whose single layer is the same file, then copies it back. Peak memory is the child process's
maximum resident set size (wait4). Not part of the test suite.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

from hepbuild import output, tools  # noqa: E402
from hepbuild.image import sif  # noqa: E402
from hepbuild.registry.client import sha256_of  # noqa: E402
from hepbuild.registry.server import LocalRegistry  # noqa: E402

MiB = 1024 * 1024


@dataclass
class Measure:
    tool: str
    operation: str
    seconds: float
    mib_per_s: float
    peak_rss_mib: float


def make_big_sif(path: Path, size_mib: int) -> Path:
    payload = path.with_suffix(".payload")
    with open(payload, "wb") as fh:
        for _ in range(size_mib):
            fh.write(os.urandom(MiB))
    sif.SifWriter().write(path, [sif.primary_squashfs(payload, "02")])
    payload.unlink()
    return path


def make_oci_layout(layout: Path, blob_source: Path, digest: str, size: int) -> None:
    """An OCI layout whose one layer is ``blob_source`` (hard-linked, not copied)."""
    blobs = layout / "blobs" / "sha256"
    blobs.mkdir(parents=True)
    (layout / "oci-layout").write_text('{"imageLayoutVersion":"1.0.0"}')
    os.link(blob_source, blobs / digest[7:])
    config = json.dumps(
        {"architecture": "amd64", "os": "linux", "rootfs": {"type": "layers", "diff_ids": [digest]}}
    ).encode()
    config_digest = _store(blobs, config)
    manifest = json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": {
                "mediaType": "application/vnd.oci.image.config.v1+json",
                "digest": config_digest,
                "size": len(config),
            },
            "layers": [
                {
                    "mediaType": "application/vnd.oci.image.layer.v1.tar",
                    "digest": digest,
                    "size": size,
                }
            ],
        }
    ).encode()
    index = {
        "schemaVersion": 2,
        "manifests": [
            {
                "mediaType": "application/vnd.oci.image.manifest.v1+json",
                "digest": _store(blobs, manifest),
                "size": len(manifest),
                "annotations": {"org.opencontainers.image.ref.name": "bench"},
            }
        ],
    }
    (layout / "index.json").write_text(json.dumps(index))


def _store(blobs: Path, data: bytes) -> str:
    import hashlib

    digest = hashlib.sha256(data).hexdigest()
    (blobs / digest).write_bytes(data)
    return f"sha256:{digest}"


def timed(argv: list[str]) -> tuple[float, float]:
    """Run a command; return (seconds, peak RSS in MiB) of that one child."""
    started = time.perf_counter()
    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(proc.pid, 0)
    seconds = time.perf_counter() - started
    stderr = proc.stderr.read().decode() if proc.stderr else ""
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"benchmark command failed: {' '.join(argv)}\n{stderr}")
    return seconds, usage.ru_maxrss / 1024


def run_once(work: Path, sif_path: Path, size: int, digest: str, index: int) -> list[Measure]:
    hepbuild = [sys.executable, "-m", "hepbuild"]
    skopeo = tools.find_tool("skopeo").path
    results: list[Measure] = []
    with (
        LocalRegistry(work / f"reg-hep-{index}") as ours,
        LocalRegistry(work / f"reg-skopeo-{index}") as theirs,
    ):
        ref = f"{ours.url}/bench/sif:1"
        steps = [
            ("hepbuild", "push", [*hepbuild, "push", "--insecure", str(sif_path), f"oras://{ref}"]),
            (
                "hepbuild",
                "pull",
                [
                    *hepbuild,
                    "pull",
                    "--insecure",
                    f"oras://{ref}",
                    str(work / f"pulled-{index}.sif"),
                ],
            ),
            (
                "skopeo",
                "push",
                [
                    skopeo,
                    "copy",
                    "-q",
                    "--dest-tls-verify=false",
                    f"oci:{work / 'layout'}:bench",
                    f"docker://{theirs.url}/bench/oci:1",
                ],
            ),
            (
                "skopeo",
                "pull",
                [
                    skopeo,
                    "copy",
                    "-q",
                    "--src-tls-verify=false",
                    f"docker://{theirs.url}/bench/oci:1",
                    f"oci:{work / f'back-{index}'}:bench",
                ],
            ),
        ]
        for tool, operation, argv in steps:
            seconds, rss = timed(argv)
            results.append(Measure(tool, operation, seconds, size / MiB / seconds, rss))
    if sha256_of(work / f"pulled-{index}.sif")[0] != digest:
        raise SystemExit("the pulled SIF differs from the pushed one")
    return results


def summarise(all_runs: list[Measure]) -> list[Measure]:
    keys = sorted({(m.tool, m.operation) for m in all_runs})
    summary = []
    for tool, operation in keys:
        runs = [m for m in all_runs if (m.tool, m.operation) == (tool, operation)]
        seconds = statistics.median(m.seconds for m in runs)
        summary.append(
            Measure(
                tool,
                operation,
                round(seconds, 2),
                round(statistics.median(m.mib_per_s for m in runs), 1),
                round(max(m.peak_rss_mib for m in runs), 1),
            )
        )
    return summary


def ratios(summary: list[Measure]) -> dict[str, float]:
    by_key = {(m.tool, m.operation): m for m in summary}
    return {
        op: round(by_key[("hepbuild", op)].mib_per_s / by_key[("skopeo", op)].mib_per_s, 2)
        for op in ("push", "pull")
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size-mib", type=int, default=1024)
    parser.add_argument("--runs", type=int, default=1)
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--workdir", type=Path, help="scratch folder (default: a temp dir)")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="hepbuild-bench-", dir=args.workdir) as tmp:
        work = Path(tmp)
        sif_path = make_big_sif(work / "big.sif", args.size_mib)
        digest, size = sha256_of(sif_path)
        make_oci_layout(work / "layout", sif_path, digest, size)
        measures = [m for i in range(args.runs) for m in run_once(work, sif_path, size, digest, i)]
    summary = summarise(measures)
    report = {
        "size_bytes": size,
        "runs": args.runs,
        "results": [asdict(m) for m in summary],
        "hepbuild_to_skopeo_throughput": ratios(summary),
    }
    if args.json:
        output.emit_json(report)
    else:
        output.print_table(
            [asdict(m) for m in summary],
            ("tool", "operation", "seconds", "mib_per_s", "peak_rss_mib"),
        )
        print(f"hepbuild/skopeo throughput: {report['hepbuild_to_skopeo_throughput']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
