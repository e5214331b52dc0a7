"""Which files changed: the diff base from GitLab's variables (or --since), and the diff itself.

GitPython does the git work. The environment is passed in as a mapping, never read here, so
tests can describe any pipeline (merge request, push, schedule, a first push) as plain data.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

import git

from hepbuild.errors import UsageError
from hepbuild.output import warn

_ZERO_SHA = "0" * 40


@dataclass(frozen=True)
class DiffBase:
    """What to compare HEAD with. ``sha`` None means: plan every cell (``why`` says why)."""

    sha: str | None
    why: str


def open_repo(root: Path) -> git.Repo:
    try:
        return git.Repo(root, search_parent_directories=True)
    except (git.InvalidGitRepositoryError, git.NoSuchPathError):
        raise UsageError(
            f"{root} is not inside a git repository",
            "run `hepbuild ci plan` from a clone, or pass --all to plan every cell",
        ) from None


def resolve_base(repo: git.Repo, env: Mapping[str, str], since: str | None) -> DiffBase:
    """Pick the commit to diff against, in GitLab's order of trust.

    A merge request's diff base is exact. A push's "before" commit is next, unless it is the
    all-zeros placeholder of a new branch; then the merge base with the default branch.
    """
    if since:
        return DiffBase(_commit_sha(repo, since, "--since"), f"--since {since}")
    if env.get("CI_PIPELINE_SOURCE") == "schedule":
        return DiffBase(None, "scheduled pipeline: every cell")
    for var in ("CI_MERGE_REQUEST_DIFF_BASE_SHA", "CI_COMMIT_BEFORE_SHA"):
        value = env.get(var, "")
        if not value or value == _ZERO_SHA:
            continue
        if _has_commit(repo, value):
            return DiffBase(_commit_sha(repo, value, var), f"{var}={value[:12]}")
        warn(f"{var}={value[:12]} is not in this clone (shallow? set GIT_DEPTH: 0); "
             "looking for another diff base")
    default = env.get("CI_DEFAULT_BRANCH")
    if default:
        merge_base = _merge_base_with(repo, default)
        if merge_base:
            return DiffBase(merge_base, f"merge base with {default}")
    return DiffBase(None, "no diff base known (new branch or first pipeline): every cell")


def _commit_sha(repo: git.Repo, ref: str, origin: str) -> str:
    try:
        return repo.commit(ref).hexsha
    except (git.BadName, ValueError, git.GitCommandError):
        raise UsageError(
            f"{origin}: {ref!r} is not a commit in {repo.working_tree_dir}",
            "fetch more history (GIT_DEPTH: 0 in GitLab) or name an existing ref",
        ) from None


def _has_commit(repo: git.Repo, sha: str) -> bool:
    try:
        repo.commit(sha)
    except (git.BadName, ValueError, git.GitCommandError):
        return False
    return True


def _merge_base_with(repo: git.Repo, branch: str) -> str | None:
    for ref in (f"origin/{branch}", branch):
        if not _has_commit(repo, ref):
            continue
        bases = repo.merge_base(ref, "HEAD")
        if bases:
            return bases[0].hexsha
    return None


def changed_files(repo: git.Repo, base_sha: str, *, include_worktree: bool = False) -> list[str]:
    """Repo-relative paths changed between ``base_sha`` and HEAD (both sides of a rename).

    With ``include_worktree`` uncommitted edits count too, which is what a developer running
    ``hepbuild ci plan --since main`` locally expects.
    """
    base = repo.commit(base_sha)
    target = None if include_worktree else repo.head.commit
    paths: set[str] = set()
    for diff in base.diff(target):
        paths.update(p for p in (diff.a_path, diff.b_path) if p)
    if include_worktree:
        paths.update(repo.untracked_files)
    return sorted(paths)


def read_tree(repo: git.Repo, sha: str, dest: Path, prefixes: tuple[str, ...]) -> None:
    """Write the files under ``prefixes`` as they were at ``sha`` into ``dest``.

    Used to load the old matrix next to the new one; symlinks are kept as links.
    """
    tree = repo.commit(sha).tree
    for blob in _blobs_under(tree, prefixes):
        target = dest / blob.path
        target.parent.mkdir(parents=True, exist_ok=True)
        data = blob.data_stream.read()
        if blob.mode == blob.link_mode:
            target.symlink_to(data.decode())
            continue
        target.write_bytes(data)
        target.chmod(blob.mode & 0o777)


def _blobs_under(tree: git.Tree, prefixes: tuple[str, ...]) -> Iterator[git.Blob]:
    for item in tree.traverse():
        if not isinstance(item, git.Blob):
            continue
        path = PurePosixPath(item.path)
        if any(str(path) == p or path.is_relative_to(p) for p in prefixes):
            yield item
