"""What Apptainer expects inside a rootfs: /.singularity.d and friends (FORMATS.md §2).

The files are produced as one extra tar layer on top of the image, so that the sandbox path
(unpack onto disk) and the streaming path (tar into tar2sqfs) get exactly the same metadata.
"""

from __future__ import annotations

import io
import json
import os
import re
import tarfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from hepbuild.image.flatten import Flattener, Node
from hepbuild.output import warn

ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
BASE_DIRS = (".singularity.d", ".singularity.d/libs", ".singularity.d/actions",
             ".singularity.d/env", "dev", "proc", "root", "var", "var/tmp", "tmp", "etc",
             "sys", "home")
TOP_LINKS = {
    "singularity": ".singularity.d/runscript",
    ".run": ".singularity.d/actions/run",
    ".exec": ".singularity.d/actions/exec",
    ".test": ".singularity.d/actions/test",
    ".shell": ".singularity.d/actions/shell",
    "environment": ".singularity.d/env/90-environment.sh",
}

_SOURCE_ENV = 'for script in /.singularity.d/env/*.sh; do\n' \
              '    if [ -f "$script" ]; then . "$script"; fi\ndone\n'

ACTIONS = {
    "exec": "#!/bin/sh\n" + _SOURCE_ENV + 'exec "$@"\n',
    "run": "#!/bin/sh\n" + _SOURCE_ENV
    + 'if [ -n "${SINGULARITY_APPNAME:-}" ] && [ -x "/scif/apps/${SINGULARITY_APPNAME}/scif/'
      'runscript" ]; then\n'
      '    exec "/scif/apps/${SINGULARITY_APPNAME}/scif/runscript" "$@"\nfi\n'
      'if [ -x /.singularity.d/runscript ]; then\n    exec /.singularity.d/runscript "$@"\nfi\n'
      'echo "There is no runscript in this container; starting a shell" >&2\nexec /bin/sh "$@"\n',
    "shell": "#!/bin/sh\n" + _SOURCE_ENV
    + 'if [ -n "${SINGULARITY_SHELL:-}" ] && [ -x "$SINGULARITY_SHELL" ]; then\n'
      '    exec "$SINGULARITY_SHELL" "$@"\nfi\n'
      'if [ -x /bin/bash ]; then\n'
      '    PS1="Apptainer ${APPTAINER_NAME:-}:\\w> "\n    export PS1\n'
      '    exec /bin/bash --norc "$@"\nfi\nexec /bin/sh "$@"\n',
    "start": "#!/bin/sh\n" + _SOURCE_ENV
    + "kill -CONT 1 2>/dev/null\n"
      'if [ -x /.singularity.d/startscript ]; then\n'
      '    exec /.singularity.d/startscript "$@"\nfi\n',
    "test": "#!/bin/sh\n" + _SOURCE_ENV
    + 'if [ -x /.singularity.d/test ]; then\n    exec /.singularity.d/test "$@"\nfi\n'
      'exec /bin/sh -c true\n',
}

ENV_SCRIPTS = {
    "01-base.sh": "#!/bin/sh\n# Base environment; intentionally empty.\n",
    "90-environment.sh": "#!/bin/sh\n# Custom environment shell code goes here.\n",
    "95-apps.sh": "#!/bin/sh\n# SCIF app environments would be set up here.\n",
    "99-base.sh": "#!/bin/sh\n"
    'if [ -z "${LD_LIBRARY_PATH:-}" ]; then\n    LD_LIBRARY_PATH=/.singularity.d/libs\nelse\n'
    '    LD_LIBRARY_PATH="$LD_LIBRARY_PATH:/.singularity.d/libs"\nfi\n'
    'PS1="${PS1:-Apptainer> }"\nexport LD_LIBRARY_PATH PS1\n',
    "99-runtimevars.sh": "#!/bin/sh\n"
    'if [ -n "${SING_USER_DEFINED_PREPEND_PATH:-}" ]; then\n'
    '    PATH="$SING_USER_DEFINED_PREPEND_PATH:$PATH"\nfi\n'
    'if [ -n "${SING_USER_DEFINED_APPEND_PATH:-}" ]; then\n'
    '    PATH="$PATH:$SING_USER_DEFINED_APPEND_PATH"\nfi\n'
    'if [ -n "${SING_USER_DEFINED_PATH:-}" ]; then\n    PATH="$SING_USER_DEFINED_PATH"\nfi\n'
    'unset SING_USER_DEFINED_PREPEND_PATH SING_USER_DEFINED_APPEND_PATH '
    'SING_USER_DEFINED_PATH\nexport PATH\n',
}

STARTSCRIPT = "#!/bin/sh\n# No startscript was defined for this container.\n"


def escape_double(value: str) -> str:
    """Make text safe inside double quotes: no expansion, no command substitution."""
    return (value.replace("\\", "\\\\").replace('"', '\\"').replace("`", "\\`")
            .replace("$", "\\$"))


def escape_single(value: str) -> str:
    return value.replace("'", "'\"'\"'")


def env_script(env: Sequence[str]) -> str:
    """10-docker2singularity.sh: image values are defaults, except PATH which is set."""
    lines = ["#!/bin/sh"]
    for entry in env:
        name, has_value, value = entry.partition("=")
        if not ENV_NAME.match(name):
            warn(f"image environment entry {entry!r} skipped: {name!r} is not a valid "
                 "shell variable name")
            continue
        if not has_value:
            lines.append(f'export {name}="${{{name}:-}}"')
        elif name == "PATH":
            lines.append(f'export PATH="{escape_double(value)}"')
        else:
            lines.append(f'export {name}="${{{name}:-"{escape_double(value)}"}}"')
    return "\n".join(lines) + "\n"


def _quoted_args(args: Sequence[str]) -> str:
    return " ".join(f'"{escape_double(a)}"' for a in args)


def _prepend_lines(args: Sequence[str], indent: str) -> str:
    return "".join(f"{indent}set -- '{escape_single(a)}' \"$@\"\n" for a in reversed(args))


def runscript(entrypoint: Sequence[str], cmd: Sequence[str]) -> str:
    """/.singularity.d/runscript with OCI ENTRYPOINT/CMD semantics (FORMATS.md §2.5).

    ENTRYPOINT and CMD are evaluated by the shell (so ``$VAR`` in them expands, as with
    Apptainer); runtime arguments are passed through as ``"$@"`` and never evaluated.
    """
    head = (f"#!/bin/sh\nOCI_ENTRYPOINT='{escape_single(_quoted_args(entrypoint))}'\n"
            f"OCI_CMD='{escape_single(_quoted_args(cmd))}'\n")
    exact = ("if [ -n \"${SINGULARITY_NO_EVAL:-}\" ]; then\n"
             "    if [ $# -eq 0 ]; then\n" + (_prepend_lines(cmd, "        ") or "        :\n")
             + "    fi\n" + _prepend_lines(entrypoint, "    ") + '    exec "$@"\nfi\n')
    evaluated = (
        'if [ $# -gt 0 ]; then\n'
        '    eval "set -- ${OCI_ENTRYPOINT} \\"\\$@\\""\n'
        'else\n'
        '    eval "set -- ${OCI_ENTRYPOINT} ${OCI_CMD}"\n'
        'fi\n'
        'if [ $# -eq 0 ]; then\n'
        '    echo "this container has no ENTRYPOINT or CMD; give a command" >&2\n'
        '    exit 1\nfi\n'
        'exec "$@"\n')
    return head + exact + evaluated


def labels_json(config: dict[str, Any], arch: str | None) -> str:
    labels = dict((config.get("config") or {}).get("Labels") or {})
    labels["org.label-schema.schema-version"] = "1.0"
    if arch:
        labels["org.opencontainers.image.architecture"] = arch
        labels["org.label-schema.build-arch"] = arch
    return json.dumps(labels, indent="\t", sort_keys=True)


def deffile(bootstrap: str, source: str) -> str:
    return f"bootstrap: {bootstrap}\nfrom: {source}\n\n"


def inspect_metadata(config: dict[str, Any], arch: str | None, definition: str) -> str:
    cfg = config.get("config") or {}
    attributes = {
        "labels": json.loads(labels_json(config, arch)),
        "environment": {"/.singularity.d/env/10-docker2singularity.sh":
                        env_script(cfg.get("Env") or [])},
        "runscript": runscript(cfg.get("Entrypoint") or [], cfg.get("Cmd") or []),
        "deffile": definition,
    }
    return json.dumps({"data": {"attributes": attributes}, "type": "container"})


# --- as a tar layer -------------------------------------------------------------------


@dataclass(frozen=True)
class Metadata:
    config: dict[str, Any]
    arch: str | None
    definition: str


def metadata_layer(flat: Flattener, meta: Metadata) -> bytes:
    """A tar adding what is missing from the merged tree, and Apptainer's own files."""
    cfg = meta.config.get("config") or {}
    mtime = int(os.environ.get("SOURCE_DATE_EPOCH") or time.time())
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.PAX_FORMAT) as tf:
        for name in BASE_DIRS:
            if _existing(flat, name) is None:
                tf.addfile(_member(name, tarfile.DIRTYPE, 0o755, mtime))
        for name, target in TOP_LINKS.items():
            node = _existing(flat, name)
            if node is None or (node.info is not None and node.info.issym()):
                tf.addfile(_member(name, tarfile.SYMTYPE, 0o777, mtime, link=target))
        files = _metadata_files(cfg, meta)
        for name, (mode, text) in sorted(files.items()):
            if name.startswith("etc/") and _is_dir(_existing(flat, name)):
                continue  # a directory there is the image's business, not ours
            data = text.encode()
            tf.addfile(_member(name, tarfile.REGTYPE, mode, mtime, size=len(data)),
                       io.BytesIO(data))
    return buffer.getvalue()


def _metadata_files(cfg: dict[str, Any], meta: Metadata) -> dict[str, tuple[int, str]]:
    files: dict[str, tuple[int, str]] = {"etc/hosts": (0o644, ""), "etc/resolv.conf": (0o644, "")}
    for name, text in ACTIONS.items():
        files[f".singularity.d/actions/{name}"] = (0o755, text)
    for name, text in ENV_SCRIPTS.items():
        files[f".singularity.d/env/{name}"] = (0o755, text)
    files[".singularity.d/env/10-docker2singularity.sh"] = (0o755, env_script(cfg.get("Env")
                                                                              or []))
    files[".singularity.d/runscript"] = (0o755, runscript(cfg.get("Entrypoint") or [],
                                                          cfg.get("Cmd") or []))
    files[".singularity.d/startscript"] = (0o755, STARTSCRIPT)
    files[".singularity.d/labels.json"] = (0o644, labels_json(meta.config, meta.arch))
    files[".singularity.d/Singularity"] = (0o644, meta.definition)
    return files


def _existing(flat: Flattener, name: str) -> Node | None:
    node = flat.root
    for part in name.split("/"):
        if node.children is None or part not in node.children:
            return None
        node = node.children[part]
    return node


def _is_dir(node: Node | None) -> bool:
    return node is not None and node.is_dir


def _member(name: str, kind: bytes, mode: int, mtime: int, *, link: str = "",
            size: int = 0) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type, info.mode, info.mtime, info.linkname, info.size = kind, mode, mtime, link, size
    info.uid = info.gid = 0
    info.uname = info.gname = "root"
    return info
