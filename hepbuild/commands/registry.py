"""``hepbuild registry start|stop|status``: a local registry for the ``local`` profile."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from hepbuild import output
from hepbuild.registry import server

DEFAULT_DIR = ".hepbuild/registry"
DEFAULT_PORT = 5000


def register(sub: Any) -> None:
    parser = sub.add_parser(
        "registry", help="start, stop or show the local registry (docker-registry on 127.0.0.1)"
    )
    parser.add_argument("action", choices=("start", "stop", "status"))
    parser.add_argument(
        "--dir",
        default=DEFAULT_DIR,
        type=Path,
        help=f"config, storage, log and pid file (default: {DEFAULT_DIR})",
    )
    parser.add_argument(
        "--port",
        default=DEFAULT_PORT,
        type=int,
        help=f"port on 127.0.0.1 (default: {DEFAULT_PORT})",
    )
    parser.add_argument("--json", action="store_true", help="print the status as JSON")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    root: Path = args.dir.resolve()
    if args.action == "start":
        registry, started = server.start_daemon(root, args.port)
        state = "started" if started else "already running"
        return _report(args, root, state, registry.port)
    if args.action == "stop":
        stopped = server.stop_daemon(root)
        return _report(args, root, "stopped" if stopped else "not running", None)
    pid = server.running_pid(root)
    port = server.running_port(root) if pid else None
    _report(args, root, "running" if pid else "not running", port)
    return 0 if pid else 1


def _report(args: argparse.Namespace, root: Path, state: str, port: int | None) -> int:
    status = {
        "state": state,
        "url": f"127.0.0.1:{port}" if port else None,
        "pid": server.running_pid(root),
        "dir": str(root),
        "log": str(root / "registry.log"),
    }
    if args.json:
        output.emit_json(status)
    elif port:
        print(f"registry {state} at 127.0.0.1:{port} (plain HTTP; log: {status['log']})")
    else:
        print(f"registry {state} ({root})")
    return 0
