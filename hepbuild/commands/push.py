"""``hepbuild push SRC... DST``: an OCI layout or SIF file(s) to a registry."""

from __future__ import annotations

import argparse
import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from hepbuild import naming, output
from hepbuild.cells import expand_matrix
from hepbuild.config.load import load_config
from hepbuild.config.model import Cell
from hepbuild.errors import UsageError
from hepbuild.image.convert import convert
from hepbuild.image.transports import ImageRef, parse_ref
from hepbuild.registry.auth import authfile_for, load_credentials
from hepbuild.registry.client import MiB, RegistryClient
from hepbuild.registry.connect import client_for
from hepbuild.registry.oras import push_sif, push_sif_set
from hepbuild.registry.push import push_image_layout
from hepbuild.registry.reference import DEFAULT_HOST, Reference, parse_reference
from hepbuild.registry.result import PushResult
from hepbuild.registry.sifmeta import is_sif

COLUMNS = ("reference", "arch", "digest", "size", "bytes uploaded")
PUSH_TAG = "push"


def register(sub: Any) -> None:
    parser = sub.add_parser(
        "push",
        help="push an OCI layout (docker://) or SIF files (oras://) to a registry",
        description="SRC is oci:DIR[:TAG], a SIF file (sif:FILE), or any other source of "
        "`hepbuild convert` (docker://, oci-archive:, docker-archive:, containers-storage:, "
        "sandbox:), converted to a temporary OCI layout first. Several SIFs for different "
        "architectures get per-arch tags TAG-ARCH plus an OCI index under TAG.",
    )
    add_tls_arguments(parser)
    parser.add_argument(
        "sources", nargs="+", metavar="SRC",
        help="oci:DIR[:TAG], FILE.sif, any transport of convert, or a cell id (its built "
        "image; for oras:// its SIF in dist/<cell>/)",
    )
    parser.add_argument("destination", metavar="DST", help="docker://HOST/REPO:TAG or oras://…")
    parser.add_argument("--arch", help="the SIF's architecture (checked against the file)")
    parser.add_argument("--json", action="store_true", help="print the result as JSON")
    parser.set_defaults(func=run)


def add_tls_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--insecure",
        action="store_true",
        help="plain HTTP, for local registries such as `hepbuild registry start`",
    )
    parser.add_argument("--ca-file", help="PEM CA bundle the registry's certificate chains to")
    parser.add_argument(
        "--chunk-size",
        type=float,
        default=8.0,
        metavar="MIB",
        help="upload chunk size in MiB (lower it behind proxies that cap bodies)",
    )


def client_from_args(args: argparse.Namespace, ref: Reference) -> RegistryClient:
    return client_for(
        ref.host,
        insecure=args.insecure,
        ca_file=args.ca_file,
        chunk_size=int(args.chunk_size * MiB),
    )


def run(args: argparse.Namespace) -> int:
    if "://" not in args.destination:
        raise UsageError(
            f"destination {args.destination!r} has no transport",
            "write docker://HOST/REPO:TAG (OCI) or oras://HOST/REPO:TAG (SIF)",
        )
    ref = parse_reference(args.destination)
    sources = resolve_cell_sources(args.sources, ref.transport, Path.cwd())
    with client_from_args(args, ref) as client:
        result = push_sources(client, sources, ref, args.arch)
    rows = [*(c.row() for c in result.children), result.row()]
    if args.json:
        output.emit_json({"result": result, "rows": rows})
    else:
        output.print_table([_human(r) for r in rows], COLUMNS)
    return 0


def resolve_cell_sources(sources: list[str], transport: str, root: Path) -> list[str]:
    """A cell id stands for what ``hepbuild build`` made of it.

    To ``docker://`` that is the cell's image in buildah's store; to ``oras://`` its SIF in
    ``dist/<cell>/``. Anything that is not a cell id of the project at ``root`` is left as is.
    """
    candidates = [s for s in sources if ":" not in s and "/" in s and not Path(s).exists()]
    if not candidates or not (root / "matrix.yaml").is_file():
        return sources
    config = load_config(root, env=os.environ)
    cells = {cell.id: cell for cell in expand_matrix(config).cells}
    return [_cell_source(cells[s], transport, root) if s in cells else s for s in sources]


def _cell_source(cell: Cell, transport: str, root: Path) -> str:
    if transport != "oras":
        return f"containers-storage:{naming.local_name(cell)}"
    sif = root / "dist" / cell.id / f"{cell.recipe.name}.sif"
    if not sif.is_file():
        raise UsageError(
            f"cell {cell.id} has no SIF at {sif}",
            f"add sif to the recipe's outputs, then run: hepbuild build --select {cell.id}",
        )
    return str(sif)


def push_sources(
    client: RegistryClient, sources: list[str], ref: Reference, arch: str | None
) -> PushResult:
    if ref.transport == "oras":
        paths = [_sif_source(s) for s in sources]
        if len(paths) == 1:
            return push_sif(client, paths[0], ref, arch)
        return push_sif_set(client, paths, ref)
    for source in sources:
        path = Path(source.removeprefix("sif:"))
        if source.startswith("sif:") or (":" not in source and path.is_file() and is_sif(path)):
            raise UsageError("SIF files are pushed over ORAS", f"use oras://{ref}")
    if len(sources) != 1:
        raise UsageError("give one OCI source, or only SIF files (to oras://)")
    image_ref = parse_ref(_with_transport(sources[0]))  # a UsageError naming the transports
    if image_ref.transport == "oci":
        return push_image_layout(client, image_ref.path, ref, image_ref.tag)
    # --insecure also covers a docker:// source: a local registry copied to another repo.
    with _converted_layout(image_ref, arch, tls_verify=not client.insecure) as (layout, tag):
        return push_image_layout(client, layout, ref, tag)


def _with_transport(source: str) -> str:
    """A bare path that does not exist is reported as such, not as a bad transport."""
    if ":" not in source and not Path(source).exists():
        raise UsageError(f"{source}: file not found", "give oci:DIR[:TAG] or an existing file")
    return source


@contextmanager
def _converted_layout(
    image_ref: ImageRef, arch: str | None, *, tls_verify: bool
) -> Iterator[tuple[Path, str]]:
    """Any other transport of `hepbuild convert` goes through a temporary OCI layout."""
    host = None
    if image_ref.transport == "docker":
        host = parse_reference(str(image_ref)).host
        if not tls_verify and host == DEFAULT_HOST:
            raise UsageError(
                f"--insecure (plain HTTP) is refused for {DEFAULT_HOST}",
                "name the source registry in full: docker://HOST:PORT/PROJECT/NAME:TAG",
            )
    with tempfile.TemporaryDirectory(prefix="hepbuild-push-") as tmp:
        layout = Path(tmp) / "layout"
        credentials = load_credentials(host) if host else None
        with authfile_for(host or "", credentials) as authfile:
            convert(
                str(image_ref),
                f"oci:{layout}:{PUSH_TAG}",
                arch=arch,
                authfile=authfile if credentials else None,
                tls_verify=tls_verify,
            )
        yield layout, PUSH_TAG


def _sif_source(source: str) -> Path:
    """A source for oras://: ``sif:FILE`` or a plain file, which must be a SIF."""
    path = Path(source.removeprefix("sif:"))
    if not path.exists():
        raise UsageError(f"{path}: file not found", "give the SIF file to push")
    if not path.is_file():
        raise UsageError(f"{path} is not a file", "oras:// takes SIF files; use docker:// for OCI")
    if not is_sif(path):
        raise UsageError(
            f"{path} is not a SIF (no SIF magic in its header)",
            "oras:// takes SIF files; OCI images go to docker://",
        )
    return path


def _human(row: dict[str, object]) -> dict[str, object]:
    size = row.get("size")
    sent = row.get("bytes_uploaded")
    return {
        **row,
        "digest": output.short_digest(str(row["digest"]), 19),
        "size": output.human_size(size if isinstance(size, int) else None),
        "bytes uploaded": output.human_size(sent if isinstance(sent, int) else None),
    }
