"""The room's side of a game day: the facilitator's prompts on a terminal (each checkpoint waits at
most its timeout, then takes its default), or --yes, which takes every default (CI)."""

from __future__ import annotations

import os
import select
import sys
import time
from typing import Literal, TextIO

from failover_drill.gameday.model import Checkpoint, GameDayDrill
from failover_drill.gameday.runner import Action

_KIND_HINT = {
    "yes-no": "y/n",
    "time": "seconds after the fault, or a clock time HH:MM:SS",
    "text": "free text",
}


def _describe(drill: GameDayDrill) -> str:
    faults = ", ".join(f.label() for f in drill.faults)
    return f"{faults}, about {drill.phases.total_s():.0f} s"


class AutoRoom:
    """--yes: every drill runs, every checkpoint takes its default, an aborted drill ends the day."""

    def before_drill(self, i: int, n: int, drill: GameDayDrill) -> Action:
        return "run"

    def after_abort(self, i: int, drill: GameDayDrill) -> Literal["next", "end"]:
        return "end"

    def ask(self, cp: Checkpoint, problem: str | None) -> tuple[str, bool]:
        return cp.default, True


class TerminalRoom:
    """Questions on `out`, answers read a line at a time from `inp` (a terminal, or a pipe of
    prepared answers: at its end every further question takes its default)."""

    def __init__(self, inp: int | None = None, out: TextIO | None = None) -> None:
        # The descriptor itself, read with os.read: a buffered reader would hold lines that
        # select() then cannot see (answers piped in all at once would wait out their timeouts).
        self.fd = sys.stdin.fileno() if inp is None else inp
        self.out = out or sys.stderr
        self.closed = False
        self._buf = b""

    def _line(self, question: str, timeout_s: float | None) -> str | None:
        """The line typed, or None at the end of input or when timeout_s passed."""
        self.out.write(question)
        self.out.flush()
        deadline = None if timeout_s is None else time.monotonic() + timeout_s
        while b"\n" not in self._buf and not self.closed:
            left = None if deadline is None else max(0.0, deadline - time.monotonic())
            ready, _, _ = select.select([self.fd], [], [], left)
            if not ready:
                self.out.write(" (no answer in time)\n")
                return None
            chunk = os.read(self.fd, 4096)
            if not chunk:
                self.closed = True
            self._buf += chunk
        if b"\n" not in self._buf:
            # The input ended: what is left (a last line without a newline) is the last answer.
            rest, self._buf = self._buf, b""
            self.out.write("\n")
            return rest.decode("utf-8", "replace").strip("\r") if rest else None
        line, _, self._buf = self._buf.partition(b"\n")
        return line.decode("utf-8", "replace").rstrip("\r")

    def before_drill(self, i: int, n: int, drill: GameDayDrill) -> Action:
        while True:
            line = self._line(
                f"\nNext: drill {i + 1}/{n} {drill.name!r} ({_describe(drill)}).\n"
                "  [Enter] run it · s skip it · q end the game day > ",
                None,
            )
            answer = (line or "").strip().lower()
            if answer in ("", "r", "run"):
                return "run"
            if answer in ("s", "skip"):
                return "skip"
            if answer in ("q", "quit", "end"):
                return "end"
            self.out.write("  answer Enter, s or q\n")

    def after_abort(self, i: int, drill: GameDayDrill) -> Literal["next", "end"]:
        while True:
            line = self._line(
                f"Drill {drill.name!r} was aborted; its faults are reverted.\n"
                "  [Enter] go on with the next drill · q end the game day > ",
                None,
            )
            if line is None:
                return "end"
            answer = line.strip().lower()
            if answer in ("", "n", "next"):
                return "next"
            if answer in ("q", "quit", "end"):
                return "end"
            self.out.write("  answer Enter or q\n")

    def ask(self, cp: Checkpoint, problem: str | None) -> tuple[str, bool]:
        if problem:
            self.out.write(f"  {problem}\n")
        default = f", Enter for {cp.default!r}" if cp.default else ""
        line = self._line(f"{cp.prompt} ({_KIND_HINT[cp.kind]}{default}) > ", cp.timeout_s)
        if line is None or (line.strip() == "" and cp.default):
            return cp.default, True
        return line, False
