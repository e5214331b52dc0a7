"""Benchmark of hepbuild's conversions against the usual tool chains. Not part of the tests.

    .venv/bin/python bench/convert/run.py [--cache /var/tmp/hepbuild-bench] [--repeat N] [--json]

The image is built once and cached: layer 1 is a Debian 12 minbase from mmdebstrap, layer 2
is what installing python3, perl, gcc, libc6-dev and git adds on top (the difference of two
mmdebstrap trees, whiteouts included). Every measurement runs as a child process; the best
of --repeat runs counts. Peak memory is hepbuild's own Python process (ru_maxrss).
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import json
import os
import shutil
import sys
import tarfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

from hepbuild import tools  # noqa: E402
from hepbuild.image.oci import OCI_LAYER_GZIP, write_blob, write_layout_index  # noqa: E402
from hepbuild.image.squashfs import DEFAULT_LEVEL  # noqa: E402
from hepbuild.platforms import host_arch  # noqa: E402

PACKAGES = "python3,perl,gcc,libc6-dev,git"
TAG = "bench"
TARGETS = {"oci_to_sif": 0.75, "oci_to_sif_same_level": 0.75, "oci_to_sandbox": 1.0,
           "sif_to_sandbox": 1.1}


def debootstrap(cache: Path, name: str, include: str | None) -> Path:
    out = cache / f"{name}.tar"
    if out.exists():
        return out
    argv = ["mmdebstrap", "--variant=minbase", "--mode=root", "--format=tar"]
    if include:
        argv.append(f"--include={include}")
    tmp = cache / f"{name}.tar.tmp"
    tools.run([*argv, "bookworm", str(tmp)])
    tmp.rename(out)
    return out


def _signature(member: tarfile.TarInfo) -> tuple:
    return (member.type, member.mode, member.uid, member.gid, member.size, member.mtime,
            member.linkname)


def diff_layer(base: Path, full: Path, out: Path) -> None:
    """Layer 2: members of ``full`` that are new or changed, whiteouts for removed paths."""
    with tarfile.open(base) as tb:
        lower = {m.name.rstrip("/"): _signature(m) for m in tb.getmembers()}
    seen = set()
    with tarfile.open(full) as tf, tarfile.open(out, "w", format=tarfile.PAX_FORMAT) as dest:
        for member in tf:
            name = member.name.rstrip("/")
            seen.add(name)
            if lower.get(name) == _signature(member) and not member.isreg():
                continue
            if lower.get(name) == _signature(member) and member.isreg():
                continue  # same size, mode and mtime: the same file from the same package
            dest.addfile(member, tf.extractfile(member) if member.isreg() else None)
        for name in sorted(set(lower) - seen):
            head, _, base_name = name.rpartition("/")
            info = tarfile.TarInfo(f"{head}/.wh.{base_name}" if head else f".wh.{base_name}")
            dest.addfile(info)


def gzip_blob(layout: Path, plain: Path) -> dict:
    packed = plain.with_suffix(".tar.gz")
    with open(plain, "rb") as src, gzip.GzipFile(packed, "wb", 6, mtime=0) as gz:
        shutil.copyfileobj(src, gz, 1 << 20)
    digest = "sha256:" + _sha256(packed)
    target = layout / "blobs" / "sha256" / digest.split(":")[1]
    target.parent.mkdir(parents=True, exist_ok=True)
    packed.rename(target)
    return {"mediaType": OCI_LAYER_GZIP, "digest": digest, "size": target.stat().st_size,
            "diff_id": "sha256:" + _sha256(plain)}


def _sha256(path: Path) -> str:
    sha = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(1 << 20):
            sha.update(chunk)
    return sha.hexdigest()


def ensure_layout(cache: Path) -> Path:
    layout = cache / "layout"
    if (layout / "index.json").exists():
        return layout
    base = debootstrap(cache, "base", None)
    full = debootstrap(cache, "full", PACKAGES)
    upper = cache / "upper.tar"
    diff_layer(base, full, upper)
    tmp = cache / "layout.tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    layers = [gzip_blob(tmp, base), gzip_blob(tmp, upper)]
    # mmdebstrap builds for the host, so the image is the host's architecture
    config = {"architecture": host_arch().oci, "os": "linux",
              "config": {"Env": ["PATH=/usr/local/bin:/usr/bin:/bin"], "Cmd": ["/bin/bash"]},
              "rootfs": {"type": "layers", "diff_ids": [x.pop("diff_id") for x in layers]}}
    config_digest, config_size = write_blob(tmp, json.dumps(config).encode())
    manifest = {"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
                "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                           "digest": config_digest, "size": config_size}, "layers": layers}
    digest, size = write_blob(tmp, json.dumps(manifest).encode())
    write_layout_index(tmp, digest, size, TAG, None)
    tmp.rename(layout)
    return layout


OURS = """
import resource, sys
from hepbuild.image.convert import convert
convert(sys.argv[1], sys.argv[2])
own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
kids = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
print(own, kids)
"""


def ours(src: str, dst: str) -> tuple[float, int, int]:
    os.sync()  # earlier steps' dirty pages must not be written back on this step's clock
    start = time.perf_counter()
    result = tools.run([sys.executable, "-c", OURS, src, dst], quiet=True,
                       env={"PYTHONPATH": str(REPO)})
    seconds = time.perf_counter() - start
    own, kids = (int(x) for x in result.text.split()[-2:])
    return seconds, own, kids


def timed(*commands: list[str]) -> float:
    os.sync()
    start = time.perf_counter()
    for argv in commands:
        tools.run(argv, quiet=True)
    return time.perf_counter() - start


def clean(*paths: Path) -> None:
    from hepbuild.image.unpack import remove_tree

    for path in paths:
        remove_tree(path)
        for extra in (path.with_name(path.name + ".sha256"), path.with_name(path.name + ".md5")):
            extra.unlink(missing_ok=True)


def warm(path: Path) -> None:
    """Read the input once so both contenders start from the page cache."""
    files = [path] if path.is_file() else [p for p in path.rglob("*") if p.is_file()]
    for item in files:
        with open(item, "rb") as fh:
            while fh.read(1 << 20):
                pass


def pair(ours_step, reference_step, reference_first: bool) -> tuple:
    """Run both contenders, in the order given; returns (ours result, reference seconds)."""
    if reference_first:
        ref = reference_step()
        return ours_step(), ref
    mine = ours_step()
    return mine, reference_step()


def measure(layout: Path, scratch: Path, reference_first: bool) -> list[dict]:
    image = f"oci:{layout}:{TAG}"
    sif, sandbox, bundle = scratch / "ours.sif", scratch / "ours-rootfs", scratch / "bundle"
    ref_sif, ref_root, squash = scratch / "ref.sif", scratch / "ref-rootfs", scratch / "r.sqfs"
    rows = []

    clean(sif, bundle, ref_sif, squash)
    warm(layout)
    (t_ours, rss, kids), t_ref = pair(
        lambda: ours(image, f"sif:{sif}"),
        lambda: timed(["umoci", "unpack", "--image", f"{layout}:{TAG}", str(bundle)],
                      ["mksquashfs", str(bundle / "rootfs"), str(squash), "-noappend", "-comp",
                       "gzip", "-no-progress", "-quiet"],
                      ["siftool", "new", str(ref_sif)],
                      ["siftool", "add", "--datatype", "4", "--parttype", "2", "--partfs", "1",
                       "--partarch", "2", "--groupid", "1", str(ref_sif), str(squash)]),
        reference_first)
    rows.append(_row("oci_to_sif", "umoci unpack + mksquashfs (Apptainer's gzip -9) + siftool",
                     t_ours, t_ref, rss, kids))
    clean(bundle, ref_sif, squash, sif)

    # The same comparison with mksquashfs at hepbuild's gzip level, to separate the streaming
    # gain from the compression-level gain.
    (t_ours, rss, kids), t_ref = pair(
        lambda: ours(image, f"sif:{sif}"),
        lambda: timed(["umoci", "unpack", "--image", f"{layout}:{TAG}", str(bundle)],
                      ["mksquashfs", str(bundle / "rootfs"), str(squash), "-noappend", "-comp",
                       "gzip", "-Xcompression-level", str(DEFAULT_LEVEL), "-no-progress",
                       "-quiet"],
                      ["siftool", "new", str(ref_sif)],
                      ["siftool", "add", "--datatype", "4", "--parttype", "2", "--partfs", "1",
                       "--partarch", "2", "--groupid", "1", str(ref_sif), str(squash)]),
        reference_first)
    rows.append(_row("oci_to_sif_same_level", f"same, mksquashfs gzip level {DEFAULT_LEVEL}",
                     t_ours, t_ref, rss, kids))
    clean(bundle, ref_sif, squash, sandbox, ref_root)

    (t_ours, rss, kids), t_ref = pair(
        lambda: ours(image, f"sandbox:{sandbox}"),
        lambda: timed(["umoci", "raw", "unpack", "--image", f"{layout}:{TAG}",
                       str(ref_root)]), reference_first)
    rows.append(_row("oci_to_sandbox", "umoci raw unpack", t_ours, t_ref, rss, kids))
    clean(sandbox, ref_root)

    from hepbuild.image.sif import read_sif

    offset = read_sif(sif).primary_partition().offset  # type: ignore[union-attr]
    warm(sif)
    (t_ours, rss, kids), t_ref = pair(
        lambda: ours(f"sif:{sif}", f"sandbox:{sandbox}"),
        lambda: timed(["unsquashfs", "-no-progress", "-quiet", "-o", str(offset), "-d",
                       str(ref_root), str(sif)]), reference_first)
    rows.append(_row("sif_to_sandbox", "unsquashfs -o", t_ours, t_ref, rss, kids))
    clean(sif, sandbox, ref_root)
    return rows


def _row(name: str, reference: str, ours_s: float, ref_s: float, rss_kib: int,
         kids_kib: int) -> dict:
    return {"conversion": name, "reference": reference, "hepbuild_s": round(ours_s, 2),
            "reference_s": round(ref_s, 2), "ratio": round(ours_s / ref_s, 2),
            "target": TARGETS[name], "hepbuild_peak_mib": round(rss_kib / 1024, 1),
            "child_tools_peak_mib": round(kids_kib / 1024, 1)}


def best_of(runs: list[list[dict]]) -> list[dict]:
    best = []
    for rows in zip(*runs, strict=True):
        pick = dict(min(rows, key=lambda r: r["hepbuild_s"]))
        pick["reference_s"] = min(r["reference_s"] for r in rows)
        pick["ratio"] = round(pick["hepbuild_s"] / pick["reference_s"], 2)
        pick["hepbuild_peak_mib"] = max(r["hepbuild_peak_mib"] for r in rows)
        best.append(pick)
    return best


def image_facts(layout: Path) -> dict:
    blobs = list((layout / "blobs" / "sha256").iterdir())
    return {"layout": str(layout), "blob_bytes": sum(b.stat().st_size for b in blobs)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cache", type=Path, default=Path("/var/tmp/hepbuild-bench"))
    parser.add_argument("--repeat", type=int, default=1)
    parser.add_argument("--scratch", type=Path, default=None,
                        help="where outputs go (default: CACHE/scratch); a tmpfs such as "
                             "/dev/shm takes a throttled disk out of the comparison")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    args.cache.mkdir(parents=True, exist_ok=True)
    layout = ensure_layout(args.cache)
    scratch = args.scratch or args.cache / "scratch"
    scratch.mkdir(parents=True, exist_ok=True)
    rows = best_of([measure(layout, scratch, reference_first=bool(i % 2))
                    for i in range(args.repeat)])
    if args.json:
        print(json.dumps({"image": image_facts(layout), "cpus": os.cpu_count(),
                          "scratch": str(scratch),
                          "load_average": os.getloadavg(),
                          "results": rows}, indent=2))
    else:
        from hepbuild.output import print_table

        print_table(rows, ["conversion", "hepbuild_s", "reference_s", "ratio", "target",
                           "hepbuild_peak_mib", "child_tools_peak_mib", "reference"])
    return 0


if __name__ == "__main__":
    sys.exit(main())
