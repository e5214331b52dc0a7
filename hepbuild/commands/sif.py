"""``hepbuild sif inspect FILE``: the header and objects of a SIF file, read by hepbuild."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from hepbuild import output
from hepbuild.image import sif
from hepbuild.platforms import centre_name, platform_for_oci


def register(sub: Any) -> None:
    parser = sub.add_parser("sif", help="look inside SIF files")
    actions = parser.add_subparsers(dest="sif_action", metavar="ACTION", required=True)
    inspect = actions.add_parser("inspect", help="show the header and the object list")
    inspect.add_argument("file", type=Path, metavar="FILE")
    inspect.add_argument("--json", action="store_true", help="print as JSON")
    inspect.set_defaults(func=run_inspect)


def run_inspect(args: argparse.Namespace) -> int:
    image = sif.read_sif(args.file)
    if args.json:
        output.emit_json(describe(image))
        return 0
    width = max(len(k) for k, _ in sif.header_fields(image)) + 2
    for key, value in sif.header_fields(image):
        print(f"{key + ':':<{width}}{value}")
    print()
    print(sif.render_list(image), end="")
    return 0


def describe(image: sif.SifImage) -> dict[str, Any]:
    """The JSON view: ``arch`` is the centre's name (x86_64...); the text mirrors siftool."""
    header = image.header
    platform = platform_for_oci(header.arch)
    objects = [{"id": d.id, "type": d.type_name, "description": d.describe_type(),
                "group": d.group_id or None, "link": d.linked_id or None,
                "link_is_group": d.link_is_group, "offset": d.offset, "size": d.size,
                "name": d.name or None, "fields": dict(d.info_fields())}
               for d in image.descriptors]
    return {"file": str(image.path), "launch_script": header.launch_script,
            "id": str(header.id), "arch": centre_name(platform) or header.arch,
            "platform": str(platform) if platform else None, "created_at": header.created_at,
            "modified_at": header.modified_at, "descriptors_free": header.descriptors_free,
            "descriptors_total": header.descriptors_total,
            "descriptors_offset": header.descriptors_offset,
            "data_offset": header.data_offset, "data_size": header.data_size,
            "objects": objects}
