"""Bootstrapping the local profile's base images, one per base and architecture.

Two methods make a root filesystem tar: ``mmdebstrap`` (a real Debian minbase, under qemu
for foreign architectures) and ``busybox`` (Debian's static busybox for that architecture,
a 2 MB base that lets tests build for every arch in seconds). The tar becomes an image with
``buildah from scratch`` + ``buildah add``, gets the right platform, and is pushed to the
base's reference. A base already in the registry is reused, never rebuilt.
"""

from __future__ import annotations

import tarfile
import tempfile
import time
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from hepbuild import output, tools
from hepbuild.build.buildah import Buildah
from hepbuild.config.model import Base, Bootstrap, Profile
from hepbuild.errors import ConfigError, Problem, ToolError, ToolMissing
from hepbuild.platforms import Arch, get_arch

DEBIAN_MIRROR = "http://deb.debian.org/debian"
BASE_LABEL = "org.hepbuild.base"


@dataclass(frozen=True)
class BaseTarget:
    base: Base
    arch: Arch
    ref: str  # where the base image lives, e.g. 127.0.0.1:5000/hepbuild-bases/debian12:x86_64

    @property
    def id(self) -> str:
        return f"{self.base.name}-{self.arch.name}"


@dataclass(frozen=True)
class BaseResult:
    base: str
    arch: str
    ref: str
    digest: str
    status: str  # "reused" or "built"
    seconds: float
    method: str


def base_targets(
    bases: Iterable[Base], profile: Profile, arches: Sequence[str] = ()
) -> list[BaseTarget]:
    """Every (base, arch) the profile bootstraps, with the reference it is pushed to."""
    wanted = {get_arch(a).name for a in arches}
    targets: list[BaseTarget] = []
    for base in sorted(bases, key=lambda b: b.name):
        if profile.bases_enabled and base.name not in profile.bases_enabled:
            continue
        for arch_name in base.arches:
            arch = get_arch(arch_name)
            if wanted and arch.name not in wanted:
                continue
            if profile.arches_enabled and arch.name not in profile.arches_enabled:
                continue
            targets.append(BaseTarget(base, arch, _base_ref(base, profile, arch)))
    return targets


def _base_ref(base: Base, profile: Profile, arch: Arch) -> str:
    override = profile.bases.get(base.name, {}).get(arch.name)
    ref = override or base.images.get(arch.name)
    if not ref:
        raise ConfigError([Problem(
            "matrix.yaml", base.line, f"base {base.name} has no image for {arch.name}",
            f"add images.{arch.name} to base {base.name} or to profile {profile.name}",
        )])
    return ref


# --- is it there already? ------------------------------------------------------------------


def remote_digest(ref: str, *, tls_verify: bool, authfile: str | None = None) -> str | None:
    """The manifest digest of ``ref`` in its registry, or None when it is not there."""
    argv = [tools.find_tool("skopeo").path, "inspect", "--format", "{{.Digest}}"]
    argv += [] if tls_verify else ["--tls-verify=false"]
    argv += ["--authfile", authfile] if authfile else []
    result = tools.run([*argv, f"docker://{ref}"], check=False, quiet=True, timeout=120)
    if result.returncode != 0:
        return None
    return result.text.strip() or None


# --- root filesystems ----------------------------------------------------------------------


def mmdebstrap_argv(bootstrap: Bootstrap, arch: Arch, out_tar: Path) -> list[str]:
    argv = ["mmdebstrap", f"--variant={bootstrap.variant or 'minbase'}",
            f"--architectures={arch.deb}", "--format=tar"]
    if bootstrap.packages:
        argv.append("--include=" + ",".join(sorted(bootstrap.packages)))
    return argv + [bootstrap.suite or "bookworm", str(out_tar), bootstrap.mirror or DEBIAN_MIRROR]


def mmdebstrap_rootfs(bootstrap: Bootstrap, arch: Arch, out_tar: Path, log_path: Path) -> None:
    tools.find_tool("mmdebstrap")
    with log_path.open("ab") as log:
        tools.run(mmdebstrap_argv(bootstrap, arch, out_tar), log_file=log,
                  hint=f"see {log_path}; a foreign arch needs qemu-user-static (hepbuild doctor)")


def busybox_deb(arch: Arch, cache_dir: Path, search_dirs: Sequence[Path] = ()) -> Path:
    """Debian's busybox-static .deb for ``arch``: from a cache or apt's archive, else downloaded."""
    pattern = f"busybox-static_*_{arch.deb}.deb"
    for directory in (cache_dir, *search_dirs, Path("/var/cache/apt/archives")):
        found = sorted(directory.glob(pattern)) if directory.is_dir() else []
        if found:
            return found[-1]
    cache_dir.mkdir(parents=True, exist_ok=True)
    tools.run(["apt-get", "download", f"busybox-static:{arch.deb}"], cwd=cache_dir,
              hint=f"needs `dpkg --add-architecture {arch.deb} && apt-get update` (scripts/setup)")
    found = sorted(cache_dir.glob(pattern))
    if not found:
        raise ToolMissing(f"apt-get download left no {pattern} in {cache_dir}")
    return found[-1]


def busybox_rootfs(deb: Path, out_tar: Path, work: Path) -> None:
    """Unpack the .deb, add one symlink per applet, and tar it with root ownership."""
    tree = work / "rootfs"
    tools.run(["dpkg-deb", "-x", deb, tree])
    busybox = tree / "bin" / "busybox"
    # The applet list comes from the binary itself (through qemu for a foreign arch).
    try:
        applets = tools.run([busybox, "--list"], quiet=True).text.split()
    except OSError as exc:  # ENOEXEC: the kernel cannot run this arch (no binfmt entry)
        raise ToolMissing(
            f"cannot run the {deb.name} busybox on this host: {exc.strerror}",
            "register qemu-user-static in binfmt_misc; see `hepbuild doctor`") from None
    for applet in applets:
        link = tree / "bin" / applet
        if applet != "busybox" and not link.exists():
            link.symlink_to("busybox")
    for directory in ("tmp", "etc", "root", "proc", "sys", "dev", "var/tmp"):
        (tree / directory).mkdir(parents=True, exist_ok=True)
    (tree / "etc" / "passwd").write_text("root:x:0:0:root:/root:/bin/sh\n", encoding="utf-8")
    (tree / "etc" / "group").write_text("root:x:0:\n", encoding="utf-8")
    _tar_as_root(tree, out_tar)


def _tar_as_root(tree: Path, out_tar: Path) -> None:
    def as_root(info: tarfile.TarInfo) -> tarfile.TarInfo:
        info.uid = info.gid = 0
        info.uname = info.gname = "root"
        if info.name.endswith("tmp") and info.isdir():
            info.mode = 0o1777
        return info

    with tarfile.open(out_tar, "w") as tar:
        for entry in sorted(tree.iterdir()):
            tar.add(entry, arcname=entry.name, filter=as_root)


# --- importing and pushing -----------------------------------------------------------------


def import_rootfs(buildah: Buildah, rootfs_tar: Path, target: BaseTarget, method: str) -> str:
    """Make an image with the right platform from a rootfs tar; return its private name.

    The private name keeps two runs bootstrapping the same base from pushing each other's
    image; ``ensure_bases`` gives it the readable name after the push.
    """
    local = f"localhost/hepbuild-tmp/{uuid.uuid4().hex}:base"
    container = buildah.from_scratch(f"hepbuild-base-{uuid.uuid4().hex[:12]}")
    try:
        buildah.add(container, rootfs_tar, "/")
        labels = {BASE_LABEL: target.base.name, f"{BASE_LABEL}.method": method}
        buildah.configure(container, target.arch, cmd="/bin/sh", labels=labels)
        buildah.commit(container, local)
    except BaseException:
        buildah.remove_container(container)
        raise
    return local


def bootstrap_base(
    buildah: Buildah, target: BaseTarget, *, work_root: Path, log_dir: Path,
    deb_dirs: Sequence[Path] = (), cache_dir: Path,
) -> str:
    """Make the rootfs, import it; return the local image name."""
    bootstrap = target.base.bootstrap
    if bootstrap is None:
        raise ConfigError([Problem("matrix.yaml", target.base.line,
                                   f"base {target.base.name} has no bootstrap method",
                                   "add bootstrap: {method: mmdebstrap} or use a pulled image")])
    log_dir.mkdir(parents=True, exist_ok=True)
    log_path = log_dir / f"base-{target.id}.log"
    with tempfile.TemporaryDirectory(prefix=f"base-{target.id}-", dir=work_root) as tmp:
        work = Path(tmp)
        rootfs = work / "rootfs.tar"
        if bootstrap.method == "mmdebstrap":
            mmdebstrap_rootfs(bootstrap, target.arch, rootfs, log_path)
        elif bootstrap.method == "busybox":
            busybox_rootfs(busybox_deb(target.arch, cache_dir, deb_dirs), rootfs, work)
        else:
            raise ConfigError([Problem(
                "matrix.yaml", target.base.line,
                f"bootstrap method {bootstrap.method!r} is not supported here",
                "use mmdebstrap or busybox")])
        return import_rootfs(buildah, rootfs, target, bootstrap.method)


def ensure_bases(
    buildah: Buildah, targets: Sequence[BaseTarget], *, work_root: Path, log_dir: Path,
    cache_dir: Path, deb_dirs: Sequence[Path] = (), rebuild: bool = False,
) -> list[BaseResult]:
    """Reuse each base already in its registry; bootstrap and push the rest."""
    settings = buildah.settings
    results: list[BaseResult] = []
    work_root.mkdir(parents=True, exist_ok=True)
    for done, target in enumerate(targets, start=1):
        start = time.monotonic()
        method = target.base.bootstrap.method if target.base.bootstrap else "-"
        digest = None if rebuild else remote_digest(
            target.ref, tls_verify=settings.tls_verify, authfile=settings.authfile)
        status = "reused"
        if digest is None:
            with output.section(f"base-{target.id}", f"bootstrap {target.id} ({method})"):
                local = bootstrap_base(buildah, target, work_root=work_root, log_dir=log_dir,
                                       deb_dirs=deb_dirs, cache_dir=cache_dir)
                try:
                    digest = _push_base(buildah, local, target)
                    buildah.tag(local, readable_name(target))
                finally:
                    buildah.untag(local)
            status = "built"
        output.progress(done, len(targets), f"base {target.id}: {status} {target.ref}")
        results.append(BaseResult(target.base.name, target.arch.name, target.ref, digest,
                                  status, round(time.monotonic() - start, 1), method))
    return results


def readable_name(target: BaseTarget) -> str:
    """The local name a bootstrapped base keeps, for ``buildah images`` and debugging."""
    return f"localhost/hepbuild-bases/{target.base.name}:{target.arch.name}"


def _push_base(buildah: Buildah, local: str, target: BaseTarget) -> str:
    try:
        return buildah.push(local, target.ref)
    except ToolError as exc:
        exc.hint = exc.hint or "is the registry running? (hepbuild registry start)"
        raise
