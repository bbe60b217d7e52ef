"""YAML loading that remembers where every value came from, so errors can name file:line."""

from __future__ import annotations

from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, ValidationError

from failover_drill.errors import ConfigError
from failover_drill.faults.model import explain

Loc = tuple[str | int, ...]
M = TypeVar("M", bound=BaseModel)


def _walk(node: yaml.Node, path: Loc, lines: dict[Loc, int]) -> Any:
    lines[path] = node.start_mark.line + 1
    if isinstance(node, yaml.MappingNode):
        out: dict[Any, Any] = {}
        for key_node, value_node in node.value:
            key = yaml.safe_load(yaml.serialize(key_node))
            out[key] = _walk(value_node, (*path, key), lines)
        return out
    if isinstance(node, yaml.SequenceNode):
        return [_walk(item, (*path, i), lines) for i, item in enumerate(node.value)]
    return yaml.safe_load(yaml.serialize(node))


def load_documents(path: Path) -> list[tuple[Any, dict[Loc, int]]]:
    """Every document of a YAML file, each with its line map."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError("file not found", source=str(path), hint="check the path") from None
    except OSError as exc:
        raise ConfigError(f"cannot read: {exc.strerror}", source=str(path)) from None
    try:
        nodes = list(yaml.compose_all(text, Loader=yaml.SafeLoader))
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = mark.line + 1 if mark is not None else None
        problem = getattr(exc, "problem", None) or str(exc)
        raise ConfigError(
            f"not valid YAML: {problem}", source=str(path), line=line, hint="fix the YAML syntax there"
        ) from None
    docs: list[tuple[Any, dict[Loc, int]]] = []
    for node in nodes:
        if node is None:
            continue
        lines: dict[Loc, int] = {}
        docs.append((_walk(node, (), lines), lines))
    return docs


def load_one(path: Path) -> tuple[Any, dict[Loc, int]]:
    docs = load_documents(path)
    if not docs:
        raise ConfigError("file is empty", source=str(path), hint="see clusters/topology.yaml for an example")
    return docs[0]


def line_of(lines: dict[Loc, int], loc: Loc) -> int | None:
    """The line of the deepest known prefix of loc (pydantic may point below what the file has)."""
    for cut in range(len(loc), -1, -1):
        if loc[:cut] in lines:
            return lines[loc[:cut]]
    return None


def validate(model: type[M], data: Any, lines: dict[Loc, int], source: str, hint: str | None = None) -> M:
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        err = exc.errors()[0]
        loc, msg = explain(err)
        field = ".".join(str(p) for p in loc) or None
        more = len(exc.errors()) - 1
        if more:
            msg += f" (and {more} more problem{'s' if more > 1 else ''})"
        raise ConfigError(msg, source=source, field=field, line=line_of(lines, loc), hint=hint) from None
