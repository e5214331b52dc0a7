"""Content keys already in the registry: the label that lets the planner skip unchanged cells.

Every image hepbuild builds carries ``org.hepbuild.content-key`` on its image config. When
the registry's image for a cell has the key the cell would get now, building it again would
produce the same image, so the plan skips it (``--force`` builds anyway).

The lookup is a plain callable, so tests can inject one; the real one asks skopeo through
hepbuild.tools (the registry client can replace it without changing callers).
"""

from __future__ import annotations

import json
from collections.abc import Callable

from hepbuild import tools
from hepbuild.config.model import Registry
from hepbuild.errors import RegistryError, ToolError

CONTENT_KEY_LABEL = "org.hepbuild.content-key"

KeyLookup = Callable[[str], "str | None"]

# skopeo's words for "there is no such image": these mean "build it", not "fail".
_ABSENT_MARKERS = ("manifest unknown", "not found", "name unknown", "404")


def registry_content_key(ref: str, *, tls_verify: bool = True) -> str | None:
    """The content key label of the image at ``ref`` (host/repo:tag), or None if absent.

    Credentials come from the usual auth file (REGISTRY_AUTH_FILE or the containers default),
    never from the command line.
    """
    skopeo = tools.find_tool("skopeo")
    argv = [skopeo.path, "inspect", "--config", "--retry-times", "1"]
    if not tls_verify:
        argv.append("--tls-verify=false")
    try:
        result = tools.run([*argv, f"docker://{ref}"], quiet=True, timeout=120)
    except ToolError as exc:
        if any(marker in exc.render().lower() for marker in _ABSENT_MARKERS):
            return None
        raise RegistryError(
            f"could not read the content key of {ref}: {_last_line(exc.tail)}",
            "check that the registry is reachable and the auth file valid, or plan with --force",
        ) from None
    return _label_from_config(result.text, ref)


def _last_line(text: str) -> str:
    lines = [line for line in text.strip().splitlines() if line.strip()]
    return lines[-1] if lines else "skopeo gave no output"


def _label_from_config(text: str, ref: str) -> str | None:
    try:
        config = json.loads(text)
    except json.JSONDecodeError:
        raise RegistryError(f"the image config of {ref} is not JSON") from None
    labels = (config.get("config") or {}).get("Labels") or {}
    value = labels.get(CONTENT_KEY_LABEL)
    return value if isinstance(value, str) and value else None


def lookup_for(registry: Registry) -> KeyLookup:
    """The real lookup for a profile's registry (plain HTTP / unverified TLS when insecure)."""

    def lookup(ref: str) -> str | None:
        return registry_content_key(ref, tls_verify=not registry.insecure)

    return lookup
