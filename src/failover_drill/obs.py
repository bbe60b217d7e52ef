"""structlog set-up: JSON for machines (a file, or stderr when it is not a terminal or when asked
with --log-format json), terse key=value on stderr for people at a terminal."""

from __future__ import annotations

import logging
import sys
from pathlib import Path
from typing import Any, Literal

import structlog

LogFormat = Literal["auto", "console", "json"]
LOG_FORMATS: tuple[LogFormat, ...] = ("auto", "console", "json")


def configure(level: str = "warning", json_file: Path | None = None, fmt: LogFormat = "auto") -> None:
    """fmt auto: JSON lines when stderr is not a terminal (a pipe, a file, CI), key=value when it is."""
    lvl = getattr(logging, level.upper(), logging.WARNING)
    processors: list[Any] = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
    ]
    if json_file is not None:
        json_file.parent.mkdir(parents=True, exist_ok=True)
        sink: Any = json_file.open("a", encoding="utf-8")
        processors.append(structlog.processors.JSONRenderer())
        min_level = logging.DEBUG
    else:
        sink = sys.stderr
        as_json = fmt == "json" or (fmt == "auto" and not sys.stderr.isatty())
        processors.append(
            structlog.processors.JSONRenderer() if as_json else structlog.dev.ConsoleRenderer(colors=False)
        )
        min_level = lvl
    structlog.configure(
        processors=processors,
        wrapper_class=structlog.make_filtering_bound_logger(min_level),
        logger_factory=structlog.PrintLoggerFactory(file=sink),
        cache_logger_on_first_use=False,
    )


def get(name: str) -> Any:
    return structlog.get_logger(name)
