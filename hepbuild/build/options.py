"""Command-line options shared by ``hepbuild build`` and ``hepbuild bases``."""

from __future__ import annotations

import argparse
import os
from collections.abc import Mapping

from hepbuild import output
from hepbuild.build.buildah import ISOLATIONS, STORAGE_DRIVERS, Buildah, choose_settings
from hepbuild.config.model import Registry


def add_buildah_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--profile", default=None,
                        help="profile from matrix.yaml (default: its default_profile)")
    parser.add_argument("--isolation", choices=ISOLATIONS, default=None,
                        help="buildah isolation for RUN steps (default: probed; env "
                             "HEPBUILD_BUILDAH_ISOLATION)")
    parser.add_argument("--storage-driver", choices=STORAGE_DRIVERS, default=None,
                        help="buildah storage driver (default: overlay if it works, else vfs; "
                             "env HEPBUILD_STORAGE_DRIVER)")
    parser.add_argument("--authfile", default=None,
                        help="registry auth file for buildah/skopeo (default: $REGISTRY_AUTH_FILE)")
    parser.add_argument("--json", action="store_true", help="print the results as JSON")


def make_buildah(args: argparse.Namespace, registry: Registry,
                 env: Mapping[str, str] | None = None) -> Buildah:
    """Buildah with the probed/overridden settings and this registry's TLS and auth file."""
    environ = env if env is not None else os.environ
    settings = choose_settings(environ, isolation=args.isolation,
                               storage_driver=args.storage_driver)
    authfile = args.authfile or environ.get("REGISTRY_AUTH_FILE") or None
    settings = settings.with_registry(authfile=authfile, tls_verify=not registry.insecure)
    for reason in settings.reasons:
        output.info(f"buildah: {reason}")
    return Buildah(settings)
