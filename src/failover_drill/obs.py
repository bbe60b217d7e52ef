"""structlog set-up: JSON to a file for machines, terse key=value to stderr for people."""

from __future__ import annotations

import logging
import sys
from pathlib import Path
from typing import Any

import structlog


def configure(level: str = "warning", json_file: Path | None = None) -> None:
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
        processors.append(structlog.dev.ConsoleRenderer(colors=False))
        min_level = lvl
    structlog.configure(
        processors=processors,
        wrapper_class=structlog.make_filtering_bound_logger(min_level),
        logger_factory=structlog.PrintLoggerFactory(file=sink),
        cache_logger_on_first_use=False,
    )


def get(name: str) -> Any:
    return structlog.get_logger(name)
