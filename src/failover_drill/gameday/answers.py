"""What the room answers at a checkpoint, read as the checkpoint's kind: yes/no, a time placed on
the drill's own axis (seconds after its first fault), or free text."""

from __future__ import annotations

import re
from datetime import datetime, timedelta

YES = frozenset({"y", "yes"})
NO = frozenset({"n", "no"})
UNKNOWN = frozenset({"", "-", "?", "unknown", "n/a", "never"})
_SECONDS = re.compile(r"^\+?\s*(\d+(?:\.\d+)?)\s*s?$")
_CLOCK = re.compile(r"^(\d{1,2}):(\d{2})(?::(\d{2}))?$")


class BadAnswer(ValueError):
    """An answer the checkpoint cannot read; the message says what it takes."""


def yes_no(text: str) -> str:
    t = text.strip().lower()
    if t in YES:
        return "yes"
    if t in NO:
        return "no"
    if t in UNKNOWN:
        return ""
    raise BadAnswer("answer y or n (or leave it empty: not known)")


def seconds_after(text: str, impact_wall: float | None) -> float | None:
    """'95', '+95s' (seconds after the fault) or a local clock time 'HH:MM[:SS]' on the day of the
    fault; None for 'unknown' or an empty answer."""
    t = text.strip().lower()
    if t in UNKNOWN:
        return None
    m = _SECONDS.match(t)
    if m:
        return float(m.group(1))
    m = _CLOCK.match(t)
    if m:
        hour, minute, second = int(m.group(1)), int(m.group(2)), int(m.group(3) or 0)
        if hour > 23 or minute > 59 or second > 59:
            raise BadAnswer(f"{text.strip()!r} is not a clock time")
        if impact_wall is None:
            raise BadAnswer("this drill has no fault time to count from: give seconds instead")
        impact = datetime.fromtimestamp(impact_wall)
        when = impact.replace(hour=hour, minute=minute, second=second, microsecond=0)
        # An answer after midnight for a fault before it (or the reverse) is the nearer day.
        if (when - impact) > timedelta(hours=12):
            when -= timedelta(days=1)
        elif (impact - when) > timedelta(hours=12):
            when += timedelta(days=1)
        return round(when.timestamp() - impact_wall, 1)
    raise BadAnswer("give seconds after the fault (95 or +95s) or a clock time (14:03:20), or 'unknown'")


def check_default(kind: str, default: str) -> None:
    """A checkpoint's default must read as its own kind (it is what --yes answers)."""
    if kind == "yes-no":
        yes_no(default)
    elif kind == "time" and _CLOCK.match(default.strip()):
        raise BadAnswer("a time checkpoint's default is seconds after the fault or 'unknown', not a clock time")
    elif kind == "time":
        seconds_after(default, None)
