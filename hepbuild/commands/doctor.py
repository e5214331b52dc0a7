"""``hepbuild doctor``: is this machine ready to build for every architecture?"""

from __future__ import annotations

import argparse
from typing import Any

from hepbuild import output
from hepbuild.build import doctor
from hepbuild.platforms import host_arch


def register(sub: Any) -> None:
    parser = sub.add_parser(
        "doctor", help="check tools, qemu/binfmt_misc per arch and the kernel; say how to fix"
    )
    parser.add_argument("--json", action="store_true", help="print the checks as JSON")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    host = host_arch()
    checks = doctor.all_checks(host)
    missing = doctor.missing_required(checks)
    if args.json:
        output.emit_json({"host": host.name, "ok": not missing,
                          "checks": [_as_dict(c) for c in checks]})
    else:
        _print(checks, host.name)
    if missing:
        names = ", ".join(f"{c.kind} {c.name}" for c in missing)
        output.warn(f"required pieces missing: {names}")
        return 1
    return 0


def _as_dict(check: doctor.Check) -> dict[str, Any]:
    return {"kind": check.kind, "name": check.name, "ok": check.ok, "required": check.required,
            "status": check.status, "found": check.found, "fix": check.fix,
            "details": check.details}


def _print(checks: list[doctor.Check], host: str) -> None:
    print(f"host architecture: {host}")
    rows = [{"kind": c.kind, "name": c.name, "status": c.status, "found": c.found}
            for c in checks]
    output.print_table(rows, ["kind", "name", "status", "found"])
    fixes = [c for c in checks if not c.ok and c.fix]
    if fixes:
        print("\nto fix:")
        for check in fixes:
            print(f"  {check.kind} {check.name}: {check.fix}")
