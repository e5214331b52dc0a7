"""Running a recipe's test command inside the image just built (under qemu where needed)."""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass
from typing import IO

from hepbuild.build.buildah import Buildah


@dataclass(frozen=True)
class TestOutcome:
    passed: bool
    exit_code: int
    seconds: float


def run_image_test(buildah: Buildah, image: str, command: str, log: IO[bytes]) -> TestOutcome:
    """``buildah from`` the image, ``buildah run`` the command, always remove the container."""
    start = time.monotonic()
    log.write(f"\n=== test: {command}\n".encode())
    container = buildah.from_image(image, f"hepbuild-test-{uuid.uuid4().hex[:12]}", log=log)
    try:
        code = buildah.run_in(container, command, log)
    finally:
        buildah.remove_container(container)
    log.write(f"=== test exit code {code}\n".encode())
    log.flush()
    return TestOutcome(code == 0, code, round(time.monotonic() - start, 1))
