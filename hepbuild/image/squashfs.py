"""squashfs through the tools door: tar2sqfs (streaming), mksquashfs (fallback), unsquashfs."""

from __future__ import annotations

import os
import threading
from pathlib import Path

from hepbuild import tools
from hepbuild.errors import ImageError
from hepbuild.image.flatten import Flattener, write_tar

COMPRESSOR = "gzip"  # what Apptainer writes by default and every squashfs mounter reads
# gzip level 6 packs ~3x faster than level 9 (mksquashfs' default) for ~0.5 % more bytes on a
# Debian image; 9 stays one option away for those who prefer the smallest file.
DEFAULT_LEVEL = 6


def jobs() -> str:
    return str(max(1, len(os.sched_getaffinity(0))))


def stream_to_squashfs(flat: Flattener, target: Path, level: int = DEFAULT_LEVEL) -> int:
    """Pipe the merged tree as one tar into tar2sqfs; returns the member count."""
    tool = tools.find_tool("tar2sqfs")
    argv = [tool.path, "--quiet", "--force", "--no-skip", "--compressor", COMPRESSOR,
            "--comp-extra", f"level={level}",
            "--num-jobs", jobs(), "--defaults", "mode=0755", str(target)]
    proc = tools.spawn(argv, stdin=tools.PIPE,
                       stdout=tools.DEVNULL, stderr=tools.PIPE)
    errors: list[bytes] = []
    stderr = proc.stderr
    assert stderr is not None
    # tar2sqfs's messages are drained on the side, so a full stderr pipe cannot stall it.
    reader = threading.Thread(target=lambda: errors.append(stderr.read()), daemon=True)
    reader.start()
    assert proc.stdin is not None
    try:
        count = write_tar(flat, proc.stdin)
        proc.stdin.close()
    except BrokenPipeError:
        count = -1  # tar2sqfs gave up; its exit code and message say why
    except BaseException:
        proc.kill()
        proc.wait()
        raise
    reader.join()
    tools.wait_checked(proc, stderr_text=b"".join(errors),
                       hint="tar2sqfs could not build the squashfs from the layer stream")
    return count


def squash_directory(source: Path, target: Path, offset: int = 0, all_root: bool = False,
                     level: int = DEFAULT_LEVEL) -> None:
    """mksquashfs a sandbox; with ``offset`` it writes into an existing file after that."""
    tool = tools.find_tool("mksquashfs", version_args=("-version",))
    argv = [tool.path, str(source), str(target), "-noappend", "-comp", COMPRESSOR,
            "-Xcompression-level", str(level),
            "-processors", jobs(), "-no-progress", "-quiet"]
    if all_root:
        argv.append("-all-root")  # a normal user's sandbox: its files belong to root inside
    if offset:
        argv += ["-o", str(offset)]
    tools.run(argv, hint="mksquashfs could not pack the sandbox")


def unsquash(image: Path, target: Path, offset: int = 0) -> None:
    """Extract a squashfs (at ``offset`` inside a SIF) into ``target``, which must not exist."""
    tool = tools.find_tool("unsquashfs", version_args=("-version",))
    # unsquashfs' default queues (256 MiB each) make it peak near 400 MiB on a large image;
    # 32 MiB queues keep it under 100 MiB and were no slower here (2 cores, tmpfs and disk).
    argv = [tool.path, "-no-progress", "-quiet", "-da", "32", "-fr", "32", "-d", str(target)]
    if os.geteuid() != 0:
        argv.append("-no-xattrs")  # security.* xattrs would fail for a normal user
    if offset:
        argv += ["-o", str(offset)]
    argv.append(str(image))
    tools.run(argv, hint="unsquashfs could not extract the SIF partition")


def check_squashfs_magic(path: Path, offset: int) -> None:
    with open(path, "rb") as fh:
        fh.seek(offset)
        if fh.read(4) != b"hsqs":
            raise ImageError(f"{path}: the primary partition at byte {offset} is not squashfs",
                             "only squashfs SIF partitions can be converted")
