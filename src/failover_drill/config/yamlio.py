"""The one loader for every file a user gives (topology, scenario, manifests): it refuses what is
not small UTF-8 text and what is not well-formed YAML, and remembers where every value came from,
so every error names the file, the line and the field, and nothing reaches the user as a traceback.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, ValidationError

from failover_drill.errors import ECHO_CHARS, ConfigError, echo
from failover_drill.faults.model import explain

# Paths hold what YAML keys can be (a date, a number), not only pydantic's str | int.
Loc = tuple[Any, ...]
M = TypeVar("M", bound=BaseModel)

# The largest real input (a topology of 8 regions, a compound scenario, a manifest) is a few KiB;
# 1 MiB leaves room for comments and still cannot make the loader chew for seconds.
MAX_INPUT_BYTES = 1 << 20
# YAML aliases can make a small file expand to billions of values ("billion laughs") and a
# recursive alias never ends: both limits are far beyond any real topology or scenario.
MAX_VALUES = 100_000
MAX_DEPTH = 64


class At(ValueError):
    """A validator's complaint about a value below the one it validates (a list entry, a key), so
    the error can name that entry's line and field path instead of the model's first line."""

    def __init__(self, loc: Loc, message: str) -> None:
        super().__init__(message)
        self.loc = loc


def _line_at(data: bytes | str, offset: int) -> int:
    newline: Any = b"\n" if isinstance(data, bytes) else "\n"
    return data.count(newline, 0, offset) + 1


def read_input_text(path: Path) -> str:
    """The text of a user's file; refuses a missing, unreadable, oversized, binary or non-UTF-8 one."""
    source = str(path)
    try:
        with path.open("rb") as fh:
            # One byte past the cap tells "too large" without reading a huge file (or a device) whole.
            raw = fh.read(MAX_INPUT_BYTES + 1)
    except FileNotFoundError:
        raise ConfigError("file not found", source=source, hint="check the path") from None
    except IsADirectoryError:
        raise ConfigError("is a folder, not a file", source=source, hint="name the YAML file itself") from None
    except OSError as exc:
        raise ConfigError(
            f"cannot read: {exc.strerror or exc}", source=source, hint="check the path and its permissions"
        ) from None
    if len(raw) > MAX_INPUT_BYTES:
        raise ConfigError(
            f"file is larger than {MAX_INPUT_BYTES // (1 << 20)} MiB, the limit for input files",
            source=source,
            hint="a topology or scenario is a few KiB of YAML: is this the right file?",
        )
    nul = raw.find(b"\0")
    if nul >= 0:
        raise ConfigError(
            "binary file, not YAML text (a NUL byte)",
            source=source,
            line=_line_at(raw, nul),
            hint="give a UTF-8 YAML file (e.g. clusters/topology.yaml)",
        )
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError(
            f"not UTF-8 text (byte 0x{raw[exc.start]:02x})",
            source=source,
            line=_line_at(raw, exc.start),
            hint="save the file as UTF-8",
        ) from None
    return text.removeprefix("\ufeff")


class _Walker:
    """Turns composed YAML nodes into plain values, recording the line of every path; refuses what
    a plain loader would silently accept (a duplicate key) or choke on (unhashable keys, bombs)."""

    def __init__(self, source: str) -> None:
        self.source = source
        self.lines: dict[Loc, int] = {}
        self.values = 0
        self.constructor = yaml.constructor.SafeConstructor()

    def _error(self, message: str, node: yaml.Node, path: Loc, hint: str | None = None) -> ConfigError:
        return ConfigError(
            message, source=self.source, line=node.start_mark.line + 1, field=field_path(path), hint=hint
        )

    def walk(self, node: yaml.Node, path: Loc, line: int | None = None) -> Any:
        self.values += 1
        if self.values > MAX_VALUES:
            raise self._error(
                f"expands to more than {MAX_VALUES:,} values",
                node,
                path,
                hint="YAML aliases (*name) that repeat large blocks? write the values out",
            )
        if len(path) > MAX_DEPTH:
            raise self._error(
                f"nested more than {MAX_DEPTH} levels deep", node, path, hint="a recursive YAML alias (*name)?"
            )
        # A mapping entry is where its key is written (its value may start on the next line).
        self.lines[path] = line if line is not None else node.start_mark.line + 1
        if isinstance(node, yaml.MappingNode):
            out: dict[Any, Any] = {}
            first_line: dict[Any, int] = {}
            for key_node, value_node in node.value:
                if not isinstance(key_node, yaml.ScalarNode):
                    raise self._error(
                        "a key must be a plain value, not a list or mapping",
                        key_node,
                        path,
                        hint="write keys as plain names (`name: value`)",
                    )
                key = self.scalar(key_node, path)
                key_line = key_node.start_mark.line + 1
                if key in first_line:
                    raise self._error(
                        f"duplicate key {echo(key)} (first at line {first_line[key]})",
                        key_node,
                        (*path, key),
                        hint="keep one of them: YAML would silently use the last",
                    )
                first_line[key] = key_line
                out[key] = self.walk(value_node, (*path, key), key_line)
            return out
        if isinstance(node, yaml.SequenceNode):
            return [self.walk(item, (*path, i)) for i, item in enumerate(node.value)]
        return self.scalar(node, path)

    def scalar(self, node: yaml.Node, path: Loc) -> Any:
        try:
            return self.constructor.construct_object(node, deep=True)
        except (yaml.YAMLError, ValueError, TypeError, OverflowError) as exc:
            # e.g. a date that does not exist (2024-13-45) or a tag only unsafe loaders know.
            problem = getattr(exc, "problem", None) or str(exc)
            raise self._error(
                f"cannot read this value: {_clip(problem)}",
                node,
                path,
                hint="quote it ('...') if it is meant as text",
            ) from None


def load_documents(path: Path) -> list[tuple[Any, dict[Loc, int]]]:
    """Every document of a YAML file, each with its line map."""
    text = read_input_text(path)
    source = str(path)
    try:
        nodes = list(yaml.compose_all(text, Loader=yaml.SafeLoader))
    except yaml.reader.ReaderError as exc:
        raise ConfigError(
            f"not valid YAML: character {exc.character!r} is not allowed",
            source=source,
            line=_line_at(text, exc.position),
            hint="remove control characters from the file",
        ) from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = mark.line + 1 if mark is not None else None
        problem = getattr(exc, "problem", None) or str(exc)
        raise ConfigError(
            f"not valid YAML: {_clip(problem)}", source=source, line=line, hint="fix the YAML syntax there"
        ) from None
    except RecursionError:
        raise ConfigError(
            "not valid YAML: nested too deeply", source=source, hint="a topology or scenario is a few levels deep"
        ) from None
    docs: list[tuple[Any, dict[Loc, int]]] = []
    for node in nodes:
        if node is None:
            continue
        walker = _Walker(source)
        docs.append((walker.walk(node, ()), walker.lines))
    return docs


def load_one(path: Path) -> tuple[Any, dict[Loc, int]]:
    docs = load_documents(path)
    if not docs:
        raise ConfigError("file is empty", source=str(path), hint="see clusters/topology.yaml for an example")
    return docs[0]


def field_path(loc: Loc) -> str | None:
    """regions.0.name; a key the user made 300 characters long is cut like any echoed value."""
    parts = [str(p) if len(str(p)) <= ECHO_CHARS else str(p)[:ECHO_CHARS] + "…" for p in loc]
    if len(parts) > 8:  # a recursive alias: the first steps say where it starts
        parts = [*parts[:6], "…"]
    return ".".join(parts) or None


def line_of(lines: dict[Loc, int], loc: Loc) -> int | None:
    """The line of the deepest known prefix of loc (pydantic may point below what the file has)."""
    for cut in range(len(loc), -1, -1):
        if loc[:cut] in lines:
            return lines[loc[:cut]]
    return None


# Every quoted literal, paired left to right (a long gap between two short quotes is not one).
_QUOTED = re.compile(r"'([^'\n]*)'|\"([^\"\n]*)\"")


def _clip(message: str, limit: int = 300) -> str:
    """Never echo a user's long value whole: quoted values are cut to 40 characters, the message
    to `limit` (validators written elsewhere may quote a value with a plain repr)."""
    message = _QUOTED.sub(_clip_quoted, message)
    return message if len(message) <= limit else message[: limit - 1] + "…"


def _clip_quoted(m: re.Match[str]) -> str:
    value = m.group(1) if m.group(1) is not None else m.group(2)
    return m.group(0) if len(value) <= ECHO_CHARS else echo(value)


def validate(model: type[M], data: Any, lines: dict[Loc, int], source: str, hint: str | None = None) -> M:
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        err = exc.errors()[0]
        where, msg = explain(err)
        loc: Loc = where
        cause = (err.get("ctx") or {}).get("error")
        if isinstance(cause, At):
            loc = (*loc, *cause.loc)
        field = field_path(loc)
        more = len(exc.errors()) - 1
        if more:
            msg += f" (and {more} more problem{'s' if more > 1 else ''})"
        raise ConfigError(_clip(msg), source=source, field=field, line=line_of(lines, loc), hint=hint) from None
