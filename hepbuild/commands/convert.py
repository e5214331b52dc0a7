"""``hepbuild convert SRC DST``: between OCI images, SIF files and sandbox directories."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from hepbuild import output
from hepbuild.image.convert import convert
from hepbuild.image.squashfs import DEFAULT_LEVEL

TRANSPORTS = ("docker://REF, oci:DIR[:TAG], oci-archive:FILE, docker-archive:FILE, "
              "containers-storage:REF, sif:FILE, sandbox:DIR")


def register(sub: Any) -> None:
    parser = sub.add_parser(
        "convert", help="convert an image between OCI, SIF and sandbox",
        description=f"Convert SRC to DST. References: {TRANSPORTS}.",
    )
    parser.add_argument("source", metavar="SRC", help="image to read")
    parser.add_argument("destination", metavar="DST", help="image to write (must not exist)")
    parser.add_argument("--arch", default=None, metavar="ARCH",
                        help="platform to pick from a multi-arch image (default: the host's)")
    parser.add_argument("--authfile", type=Path, default=None, metavar="FILE",
                        help="registry auth file (containers auth.json format)")
    parser.add_argument("--tls-verify", default="true", choices=("true", "false"),
                        help="verify registry TLS certificates (default: true)")
    parser.add_argument("--compression-level", type=int, default=DEFAULT_LEVEL, metavar="N",
                        help=f"gzip level 1-9 of a SIF's squashfs (default: {DEFAULT_LEVEL}; "
                             "9 is mksquashfs' default, a little smaller and ~3x slower)")
    parser.add_argument("--json", action="store_true", help="print the result as JSON")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    result = convert(args.source, args.destination, arch=args.arch, authfile=args.authfile,
                     tls_verify=args.tls_verify == "true",
                     compression_level=args.compression_level)
    if args.json:
        output.emit_json(result)
        return 0
    row = {"destination": result.destination, "format": result.format, "arch": result.arch,
           "digest": output.short_digest(result.digest, 23),
           "size": output.human_size(result.size), "time": result.seconds}
    output.print_table([row], ["destination", "format", "arch", "digest", "size", "time"])
    for path in result.checksum_files:
        output.info(f"wrote {path}")
    return 0
