"""A plain Dockerfile turned into an Apptainer definition that means the same.

Why our own parser and not spython's: checked against cases D1-D3 (tests/unit/
test_recipes_dockerfile.py), spython 0.3 turns ``ARG A=1``/``ARG AB=2``/``FROM img:$AB``
into ``img:1B``, keeps comment lines inside a continued RUN, strips the leading space of a
continued line inside quotes (D3 then prints ``y`` instead of `` y``), drops all but the first
source of a multi-source COPY, ignores WORKDIR for relative COPY destinations, writes every
ENV twice and runs an exec-form CMD through ``/bin/bash``. The rules below follow Docker's
(BuildKit's) parser instead; what we do not convert raises an error naming the line.
"""

from __future__ import annotations

import json
import posixpath
import re
import shlex
from collections.abc import Mapping
from dataclasses import dataclass, field

from hepbuild.errors import ConfigError, Problem

BASE_ARG = "BASE_IMAGE"  # `ARG BASE_IMAGE=...` before FROM: hepbuild sets it per cell
_CONTINUATION = re.compile(r"\\[ \t]*$")
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_ARCHIVE = re.compile(r"\.(tar|tgz|tar\.(gz|bz2|xz|zst)|tbz2|txz)$")
_HEREDOC = re.compile(r"<<-?[\"']?[A-Za-z_]")
_INSTRUCTION = re.compile(r"(\S+)\s*(.*)", re.S)
_HANDLED = {"ARG", "FROM", "ENV", "LABEL", "RUN", "WORKDIR", "COPY", "ADD", "CMD", "ENTRYPOINT",
            "SHELL"}
_IGNORED = {"EXPOSE", "VOLUME", "STOPSIGNAL", "HEALTHCHECK", "MAINTAINER", "USER", "ONBUILD"}


@dataclass(frozen=True)
class Instruction:
    line: int  # where it starts in the Dockerfile
    keyword: str  # upper case
    text: str  # the arguments, continuation lines joined as Docker joins them


@dataclass
class Converted:
    """What an Apptainer definition needs, in Dockerfile order where order matters."""

    from_image: str = ""
    post: list[str] = field(default_factory=list)  # shell lines for %post
    environment: dict[str, str] = field(default_factory=dict)  # final ENV, for %environment
    labels: dict[str, str] = field(default_factory=dict)
    files: list[tuple[str, str]] = field(default_factory=list)  # (src in context, dest)
    workdir: str | None = None
    entrypoint: list[str] | None = None
    cmd: list[str] | None = None


class _Failure(Exception):
    def __init__(self, line: int, message: str, hint: str | None = None) -> None:
        super().__init__(message)
        self.line, self.message, self.hint = line, message, hint


# --- lines and instructions --------------------------------------------------------------------


def instructions(text: str) -> list[Instruction]:
    """Logical instructions. Comment and empty lines inside a continuation are dropped."""
    result: list[Instruction] = []
    lines = text.splitlines()
    index = 0
    while index < len(lines):
        raw = lines[index]
        index += 1
        if _is_comment_or_blank(raw):
            continue
        start = index
        joined, open_ = _strip_continuation(raw.lstrip())
        while open_ and index < len(lines):
            raw = lines[index]
            index += 1
            if _is_comment_or_blank(raw):
                continue
            piece, open_ = _strip_continuation(raw)
            joined += piece
        match = _INSTRUCTION.match(joined)
        if match is not None:
            result.append(Instruction(start, match.group(1).upper(), match.group(2).strip()))
    return result


def _is_comment_or_blank(line: str) -> bool:
    stripped = line.strip()
    return not stripped or stripped.startswith("#")


def _strip_continuation(line: str) -> tuple[str, bool]:
    match = _CONTINUATION.search(line)
    if match is None:
        return line, False
    return line[: match.start()], True


# --- words, quotes and ${VAR} --------------------------------------------------------------------


def split_words(text: str) -> list[str]:
    """Split at unquoted whitespace, keeping quotes and escapes for expand()."""
    words: list[str] = []
    current = ""
    quote: str | None = None
    i = 0
    while i < len(text):
        ch = text[i]
        if ch == "\\" and quote != "'" and i + 1 < len(text):
            current += text[i: i + 2]
            i += 2
            continue
        if quote:
            quote = None if ch == quote else quote
        elif ch in "'\"":
            quote = ch
        elif ch in " \t":
            if current:
                words.append(current)
            current = ""
            i += 1
            continue
        current += ch
        i += 1
    if quote:
        raise ValueError(f"unterminated {quote} quote")
    if current:
        words.append(current)
    return words


def expand(word: str, variables: Mapping[str, str]) -> str:
    """Docker's word processing: quote removal, escapes, $NAME/${NAME} with longest names."""
    out: list[str] = []
    i = 0
    quote: str | None = None
    while i < len(word):
        ch = word[i]
        if quote == "'":
            if ch == "'":
                quote = None
            else:
                out.append(ch)
            i += 1
        elif ch == "\\" and i + 1 < len(word):
            nxt = word[i + 1]
            keep = quote == '"' and nxt not in '"$\\'
            out.append(ch + nxt if keep else nxt)
            i += 2
        elif ch in "'\"" and (quote is None or quote == ch):
            quote = None if quote else ch
            i += 1
        elif ch == "$":
            value, i = _variable(word, i, variables)
            out.append(value)
        else:
            out.append(ch)
            i += 1
    return "".join(out)


def _variable(word: str, i: int, variables: Mapping[str, str]) -> tuple[str, int]:
    if word.startswith("${", i):
        end = word.find("}", i)
        if end < 0:
            raise ValueError("missing } in ${...}")
        return _braced(word[i + 2: end], variables), end + 1
    match = _NAME.match(word, i + 1)  # greedy: $AB is AB, never A followed by B
    if match is None:
        return "$", i + 1
    return variables.get(match.group(), ""), match.end()


def _braced(inner: str, variables: Mapping[str, str]) -> str:
    match = _NAME.match(inner)
    if match is None:
        raise ValueError(f"bad substitution ${{{inner}}}")
    name, rest = match.group(), inner[match.end():]
    value = variables.get(name)
    if not rest:
        return value or ""
    for op in (":-", ":+", "-", "+"):
        if rest.startswith(op):
            word = expand(rest[len(op):], variables)
            is_set = value is not None and (value != "" or ":" not in op)
            if "-" in op:
                return value if is_set and value is not None else word
            return word if is_set else ""
    raise ValueError(f"unsupported substitution ${{{inner}}}")


def pairs(text: str, variables: Mapping[str, str]) -> list[tuple[str, str]]:
    """ENV/LABEL arguments: ``K=V K2="a b"`` or the legacy ``K some value``."""
    words = split_words(text)
    if not words:
        raise ValueError("needs at least one name=value")
    if "=" not in words[0]:
        key, _, rest = text.strip().partition(" ")
        if not rest.strip():
            raise ValueError(f"{key} has no value (write {key}=value)")
        return [(expand(key, variables), expand(rest.strip(), variables))]
    result = []
    for word in words:
        key, sep, value = word.partition("=")
        if not sep:
            raise ValueError(f"{word!r} is not name=value (mixing forms is not allowed)")
        result.append((expand(key, variables), expand(value, variables)))
    return result


# --- conversion ----------------------------------------------------------------------------------


def parse(text: str, shown_as: str, base_image: str | None = None) -> Converted:
    """Convert a single-stage Dockerfile. Raises ConfigError naming the file and line."""
    try:
        return _convert(instructions(text), base_image)
    except _Failure as failure:
        problem = Problem(shown_as, failure.line, failure.message, failure.hint)
        raise ConfigError([problem]) from None


def _convert(items: list[Instruction], base_image: str | None) -> Converted:
    state = _State(base_image)
    for item in items:
        try:
            state.apply(item)
        except ValueError as exc:
            raise _Failure(item.line, f"{item.keyword}: {exc}") from None
    if not state.result.from_image:
        raise _Failure(1, "no FROM instruction", "a Dockerfile recipe starts FROM a base image")
    return state.result


class _State:
    def __init__(self, base_image: str | None) -> None:
        self.result = Converted()
        self.global_args: dict[str, str] = {}
        self.variables: dict[str, str] = {}  # ARG and ENV values visible to later lines
        self.base_image = base_image
        self.workdir = "/"

    def apply(self, item: Instruction) -> None:
        if item.keyword in ("RUN", "COPY", "ADD") and _HEREDOC.search(item.text):
            raise _Failure(item.line, f"{item.keyword} with a heredoc is not supported",
                           "move the script into a file next to the Dockerfile and COPY it")
        handler = getattr(self, f"_{item.keyword.lower()}") if item.keyword in _HANDLED else None
        if item.keyword in _IGNORED:
            self.result.post.append(f"# {item.keyword} {item.text} (no Apptainer equivalent)")
            return
        if handler is None:
            raise _Failure(item.line, f"unsupported instruction {item.keyword}",
                           "hepbuild converts FROM ARG ENV LABEL RUN COPY ADD WORKDIR CMD "
                           "ENTRYPOINT; remove the others or write a recipe.yaml")
        if not self.result.from_image and item.keyword not in ("ARG", "FROM"):
            raise _Failure(item.line, f"{item.keyword} before FROM")
        handler(item)

    def _arg(self, item: Instruction) -> None:
        for word in split_words(item.text):
            name, sep, default = word.partition("=")
            value = expand(default, self.variables) if sep else None
            if not self.result.from_image:
                if name == BASE_ARG and self.base_image is not None:
                    value = self.base_image
                if value is not None:
                    self.global_args[name] = value
                continue
            value = self.global_args.get(name, value) if not sep else value
            if value is not None:
                self.variables[name] = value
                self.result.post.append(f"export {name}={shlex.quote(value)}")

    def _from(self, item: Instruction) -> None:
        if self.result.from_image:
            raise _Failure(item.line, "multi-stage Dockerfiles are not converted",
                           "keep one FROM, or build the stages as separate recipes")
        words = [w for w in split_words(item.text) if not w.startswith("--platform")]
        if len(words) not in (1, 3):
            raise ValueError("expected FROM image [AS name]")
        self.result.from_image = expand(words[0], self.global_args)

    def _env(self, item: Instruction) -> None:
        for key, value in pairs(item.text, self.variables):
            self.variables[key] = value
            self.result.environment[key] = value
            self.result.post.append(f"export {key}={shlex.quote(value)}")

    def _label(self, item: Instruction) -> None:
        for key, value in pairs(item.text, self.variables):
            self.result.labels[key] = value

    def _run(self, item: Instruction) -> None:
        if item.text.startswith("--"):
            raise ValueError("RUN flags (--mount, --network) are not converted")
        argv = _json_form(item.text)
        if argv is not None:
            self.result.post.append(" ".join(shlex.quote(w) for w in argv))
            return
        # Docker runs a shell-form RUN as `/bin/sh -c <text>`: same shell, and a `cd` or a
        # failing first command inside it stays inside it, as it does under Docker.
        self.result.post.append("/bin/sh -c " + _single_quote(item.text))

    def _workdir(self, item: Instruction) -> None:
        self.workdir = posixpath.join(self.workdir, expand(item.text.strip(), self.variables))
        self.workdir = posixpath.normpath(self.workdir)
        self.result.workdir = self.workdir
        quoted = shlex.quote(self.workdir)
        self.result.post.append(f"mkdir -p {quoted} && cd {quoted}")

    def _copy(self, item: Instruction) -> None:
        words = _json_form(item.text) or split_words(item.text)
        flags = [w for w in words if w.startswith("--")]
        words = [expand(w, self.variables) for w in words if not w.startswith("--")]
        for flag in flags:
            if flag.startswith("--from"):
                raise ValueError("COPY --from needs a multi-stage build, which is not converted")
        if len(words) < 2:
            raise ValueError("needs a source and a destination")
        *sources, dest = words
        if len(sources) > 1 and not dest.endswith("/"):
            raise ValueError("with several sources the destination must end with /")
        dest = posixpath.join(self.workdir, dest)  # relative destinations follow WORKDIR
        for source in sources:
            self._check_source(item, source)
            into = dest.endswith("/") or len(sources) > 1
            target = posixpath.join(dest, posixpath.basename(source.rstrip("/"))) if into else dest
            self.result.files.append((posixpath.normpath(source), posixpath.normpath(target)))

    def _add(self, item: Instruction) -> None:
        self._copy(item)

    def _check_source(self, item: Instruction, source: str) -> None:
        if item.keyword == "ADD" and (re.match(r"^[a-z]+://", source) or _ARCHIVE.search(source)):
            raise ValueError(f"ADD {source}: URLs and auto-extracted archives are not converted "
                             "(use RUN curl/tar, or COPY)")
        if source.startswith("/") or ".." in source.split("/"):
            raise ValueError(f"source {source!r} is outside the build context")

    def _cmd(self, item: Instruction) -> None:
        self.result.cmd = _command(item.text)

    def _entrypoint(self, item: Instruction) -> None:
        self.result.entrypoint = _command(item.text)

    def _shell(self, item: Instruction) -> None:
        raise ValueError("SHELL changes how RUN is run and is not converted")


def _json_form(text: str) -> list[str] | None:
    if not text.lstrip().startswith("["):
        return None
    try:
        value = json.loads(text)
    except json.JSONDecodeError:
        return None  # Docker falls back to the shell form too
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return value
    return None


def _command(text: str) -> list[str]:
    return _json_form(text) or ["/bin/sh", "-c", text]


def _single_quote(text: str) -> str:
    return "'" + text.replace("'", "'\"'\"'") + "'"


# --- output --------------------------------------------------------------------------------------


def with_base_arg(text: str, image: str) -> str:
    """The Dockerfile with ``ARG BASE_IMAGE``'s default (before FROM) set to ``image``."""
    out = []
    seen_from = False
    for line in text.splitlines():
        words = line.split()
        if words[:1] and words[0].upper() == "FROM":
            seen_from = True
        if (not seen_from and len(words) == 2 and words[0].upper() == "ARG"
                and words[1].split("=", 1)[0] == BASE_ARG):
            line = f"ARG {BASE_ARG}={image}"
        out.append(line)
    return "\n".join(out) + "\n"


def to_definition(parsed: Converted, extra_labels: Mapping[str, str], header: str = "") -> str:
    from hepbuild.render import runscript_lines  # one runscript rule for both kinds of recipe

    labels = {**parsed.labels, **extra_labels}
    parts = [header + "Bootstrap: docker\n" + f"From: {parsed.from_image}\n"]
    parts.append(_section("labels", [f"{k} {' '.join(v.split())}" for k, v in labels.items()]))
    env = [f"export {k}={shlex.quote(v)}" for k, v in parsed.environment.items()]
    parts.append(_section("environment", env))
    parts.append(_section("files", [f"{s} {d}" for s, d in parsed.files]))
    parts.append(_section("post", ["set -e"] + parsed.post))
    entry = tuple(parsed.entrypoint) if parsed.entrypoint else None
    cmd = tuple(parsed.cmd) if parsed.cmd else None
    run = runscript_lines(entry, cmd)
    if run and parsed.workdir:
        run = [f"cd {shlex.quote(parsed.workdir)}"] + run
    parts.append(_section("runscript", run))
    return "\n".join(p for p in parts if p)


def _section(name: str, lines: list[str]) -> str:
    if not lines:
        return ""
    return f"%{name}\n" + "".join(f"    {line}\n" for line in lines)
