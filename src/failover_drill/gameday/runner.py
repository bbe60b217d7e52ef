"""A game day: the drills of a file in order on one fleet, the room's answers after each, and the
after-action report, written however the day ends (completed, ended early, Ctrl-C, SIGTERM).

The fleet is held for the whole day: between drills nobody else injects into it or tears it down.
Every drill reverts its own faults; the day reverts anything left under its name before it stops
the fleet, and `failover-drill recover` covers a day that was killed outright."""

from __future__ import annotations

import contextlib
import json
import os
import signal
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from types import FrameType
from typing import Any, Literal, Protocol

from failover_drill.config.scenario import Scenario
from failover_drill.config.topology import Topology, load_topology
from failover_drill.drill import Drill, LiveView
from failover_drill.errors import (
    EXIT_BAD_INPUT,
    EXIT_INCONCLUSIVE,
    EXIT_INTERRUPTED,
    EXIT_PASSED,
    EXIT_PLATFORM,
    EXIT_VERDICT_FAILED,
    ConfigError,
    DrillError,
    Interrupted,
    PlatformError,
)
from failover_drill.faults.catalogue import check_schedule, resolve
from failover_drill.gameday import after_action
from failover_drill.gameday.answers import BadAnswer, seconds_after, yes_no
from failover_drill.gameday.day_journal import Answer, Day, DayEnd, DayJournal, DayStart, DrillStep, now
from failover_drill.gameday.model import Checkpoint, GameDay, GameDayDrill, GameDayFile, slug
from failover_drill.ownership import FleetOwnership
from failover_drill.platforms.base import Platform
from failover_drill.platforms.registry import open_platform
from failover_drill.recovery import recover, revert_open_faults

Action = Literal["run", "skip", "end"]


class Room(Protocol):
    """The people: asked before each drill, after an aborted one, and at each checkpoint.
    KeyboardInterrupt from any of these ends the day (faults reverted, partial report)."""

    def before_drill(self, i: int, n: int, drill: GameDayDrill) -> Action: ...

    def after_abort(self, i: int, drill: GameDayDrill) -> Literal["next", "end"]: ...

    def ask(self, cp: Checkpoint, problem: str | None) -> tuple[str, bool]:
        """(the answer as typed, whether it is the default: --yes, or timeout_s passed)."""
        ...


class Screen(Protocol):
    def drill_starting(self, i: int, n: int, drill: GameDayDrill, budget_so_far: float) -> None: ...

    def progress(self, view: LiveView) -> None: ...

    def drill_over(self) -> None: ...

    def say(self, message: str) -> None: ...


@dataclass
class DayOutcome:
    day_dir: Path
    status: str
    exit_code: int
    report: Path


@dataclass(frozen=True)
class _Planned:
    drill: GameDayDrill
    scenario: Scenario


def day_topology(day: GameDay, file: Path) -> Topology:
    """The day's topology, a relative path read against the game-day file's own folder."""
    path = None
    if day.topology:
        path = Path(day.topology)
        if not path.is_absolute():
            path = file.parent / path
    return load_topology(path, mesh=day.mesh)


def plan_day(f: GameDayFile, topo: Topology) -> list[_Planned]:
    """Every drill's scenario and faults checked against the fleet before anything starts; an
    error names the drill, its field and line (a fault's own errors say `fault.target`)."""
    planned = []
    for i, d in enumerate(f.day.drills):
        sc = d.scenario()
        loc: tuple[str | int, ...] = ("drills", i)
        try:
            where: tuple[str | int, ...] = (*loc, "region")
            topo.region(sc.region)
            for k, fault in enumerate(sc.faults):
                where = (*loc, "faults", k)
                resolve(fault, topo, sc.region)
            where = (*loc, "faults")
            if sc.faults or sc.rollout is None:
                check_schedule([resolve(x, topo, sc.region) for x in sc.faults], sc.phases.fault_s)
            if sc.rollout is not None and f.day.platform == "sandbox":
                where = (*loc, "rollout")
                raise ConfigError(
                    "a release needs Argo Rollouts, which needs a Kubernetes API: the sandbox has none",
                    hint="set `platform: kwok` (or kind) for the day, or drop the drill's rollout",
                )
        except ConfigError as exc:
            sub = exc.field.removeprefix("fault.") if exc.field else None
            if sub and where[-1] != "region" and sub not in ("region", "faults"):
                where = (*where, sub)
            raise ConfigError(
                f"drill {i + 1} ({d.name!r}): {exc.reason}",
                source=str(f.path),
                field=".".join(str(p) for p in where),
                line=f.line_of(where),
                hint=exc.hint,
            ) from None
        planned.append(_Planned(d, sc))
    return planned


@contextlib.contextmanager
def _sigterm_interrupts() -> Iterator[Callable[[], None]]:
    """SIGTERM between drills ends the day as Ctrl-C does (a drill handles it itself, then puts
    back the default); the yielded function puts this handler back after each drill."""

    def handler(_sig: int, _frame: FrameType | None) -> None:
        raise KeyboardInterrupt

    def install() -> None:
        signal.signal(signal.SIGTERM, handler)

    previous = signal.getsignal(signal.SIGTERM)
    install()
    try:
        yield install
    finally:
        signal.signal(signal.SIGTERM, previous)


class GameDayRunner:
    def __init__(
        self,
        file: GameDayFile,
        *,
        state_dir: Path,
        runs_dir: Path,
        room: Room,
        screen: Screen,
        keep_up: bool = False,
        resume: Path | None = None,
    ) -> None:
        self.source = file
        self.day = file.day
        self.file = file.path
        self.sha256 = file.sha256
        self.state_dir = state_dir
        self.runs_dir = runs_dir
        self.room = room
        self.screen = screen
        self.keep_up = keep_up
        self.resume = resume
        self._resumed: Day | None = None

    def run(self) -> DayOutcome:
        topo = day_topology(self.day, self.file)
        planned = plan_day(self.source, topo)
        first = self._resume_at(len(planned)) if self.resume is not None else 0
        platform = open_platform(self.day.platform, self.state_dir, topo)
        ownership = FleetOwnership(self.state_dir)
        # Before the day's folder exists: a fleet in use refuses the day with nothing written.
        ownership.acquire(f"game day {self.day.title!r}")
        try:
            day_dir = self._day_dir()
        except BaseException:
            ownership.release()
            raise
        journal = DayJournal(day_dir / "day.jsonl")
        status: Literal["completed", "ended", "interrupted"] = "completed"
        codes: list[int] = []
        owned = False
        try:
            with _sigterm_interrupts() as reinstall:
                try:
                    # Whatever a day or drill that died left (faults, frozen replicas, a fleet
                    # whose owner is gone) is put right before this day measures anything.
                    self._recover_leftovers()
                    owned = not platform.is_up()
                    if owned:
                        self.screen.say(f"bringing up the {platform.name} fleet for the day")
                        platform.up(progress=self.screen.say, owner_pid=os.getpid())
                    status = self._drills(planned, first, platform, topo, journal, codes, reinstall)
                except KeyboardInterrupt:
                    status = "interrupted"
                finally:
                    # Nothing a drill of this day injected outlives the day, whatever ended it.
                    revert_open_faults(self.state_dir, only_owner=os.getpid(), platform=platform)
                    if owned and not self.keep_up:
                        self.screen.say(f"stopping the {platform.name} fleet")
                        platform.down()
        finally:
            ownership.release()
            journal.write(DayEnd(status, now()))
            report = after_action.write(day_dir)
        return DayOutcome(day_dir, status, self._exit_code(status, codes), report)

    def _recover_leftovers(self) -> None:
        rep = recover(self.state_dir)
        for line in [*rep.repaired, *(f"reverted {x}" for x in rep.reverted), *rep.orphans]:
            self.screen.say(f"left by a run that died: {line}")
        problems = [*rep.unrepaired, *rep.failed]
        if problems:
            raise PlatformError(
                "the fleet holds what a run that died left, and it could not be put right: " + "; ".join(problems),
                hint="run `failover-drill recover`, then start the day again",
            )

    def _resume_at(self, n: int) -> int:
        assert self.resume is not None
        recorded = DayJournal(self.resume / "day.jsonl").read()
        if recorded.start.sha256 != self.sha256:
            raise ConfigError(
                "the game-day file changed since this day started: its drills may no longer be the same",
                source=str(self.file),
                hint=f"run the file as it was ({recorded.start.file}), or start a new game day without --resume",
            )
        first = recorded.next_drill()
        self._resumed = recorded
        if first >= n and not any(recorded.unasked(i) for i in range(n)):
            raise ConfigError(
                "every drill of this game day is behind it already",
                source=str(self.resume),
                hint="start the game day again without --resume",
            )
        return first

    def _day_dir(self) -> Path:
        if self.resume is not None:
            return self.resume
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
        day_dir = self.runs_dir / "gamedays" / f"{stamp}-{slug(self.day.title)}"
        day_dir.mkdir(parents=True, exist_ok=False)
        DayJournal(day_dir / "day.jsonl").write(
            DayStart(
                self.day.title,
                str(self.file.resolve()),
                self.sha256,
                [d.name for d in self.day.drills],
                now(),
                dict(self.day.roles),
                [[[c.name, c.prompt] for c in d.checkpoints] for d in self.day.drills],
            )
        )
        return day_dir

    def _drills(
        self,
        planned: list[_Planned],
        first: int,
        platform: Platform,
        topo: Topology,
        journal: DayJournal,
        codes: list[int],
        reinstall: Callable[[], None],
    ) -> Literal["completed", "ended", "interrupted"]:
        n = len(planned)
        if self._resumed is not None:
            # A day that stopped between a drill and its questions asks them now, on that drill's times.
            for i in range(first):
                names = {name for name, _ in self._resumed.unasked(i)}
                step = self._resumed.steps[i] if names else None
                if step is not None and step.run_dir is not None:
                    self.screen.say(f"drill {i + 1} {planned[i].drill.name!r}: its questions not yet answered")
                    self._checkpoints(i, planned[i].drill, Path(step.run_dir), journal, names)
        for i in range(first, n):
            p = planned[i]
            action = self.room.before_drill(i, n, p.drill)
            if action == "end":
                return "ended"
            if action == "skip":
                journal.write(DrillStep(i, p.drill.name, "skipped", now()))
                continue
            journal.write(DrillStep(i, p.drill.name, "started", now()))
            self.screen.drill_starting(i, n, p.drill, after_action.budget_so_far(journal.path))
            drill = Drill(
                p.scenario,
                topo,
                state_dir=self.state_dir,
                runs_dir=self.runs_dir,
                keep_up=True,
                progress=self.screen.progress,
                platform=platform,
                hold_fleet=False,
            )
            try:
                outcome = drill.run()
            except Interrupted as exc:
                reinstall()
                self.screen.drill_over()
                run_dir = str(drill.run_dir) if drill.run_dir else None
                journal.write(DrillStep(i, p.drill.name, "aborted", now(), run_dir, EXIT_INTERRUPTED, exc.message))
                codes.append(EXIT_INTERRUPTED)
                if self.room.after_abort(i, p.drill) == "end":
                    return "interrupted"
                continue
            except DrillError as exc:
                reinstall()
                self.screen.drill_over()
                run_dir = str(drill.run_dir) if drill.run_dir else None
                journal.write(DrillStep(i, p.drill.name, "error", now(), run_dir, exc.exit_code, str(exc)))
                codes.append(exc.exit_code)
                # A fleet that failed one drill is no place for the next: the day ends here.
                self.screen.say(f"drill {p.drill.name!r} failed to run: {exc.message}")
                return "ended"
            reinstall()
            self.screen.drill_over()
            journal.write(DrillStep(i, p.drill.name, "finished", now(), str(outcome.run_dir), outcome.exit_code))
            codes.append(outcome.exit_code)
            self._checkpoints(i, p.drill, outcome.run_dir, journal)
        return "completed"

    def _checkpoints(
        self, i: int, drill: GameDayDrill, run_dir: Path, journal: DayJournal, only: set[str] | None = None
    ) -> None:
        impact = impact_wall(run_dir)
        for cp in drill.checkpoints:
            if only is not None and cp.name not in only:
                continue
            problem: str | None = None
            while True:
                typed, defaulted = self.room.ask(cp, problem)
                try:
                    answer, at_s = _read(cp, typed, impact)
                    break
                except BadAnswer as exc:
                    if defaulted:  # a default was checked when the file was loaded; a clock one needs a fault
                        answer, at_s = typed, None
                        break
                    problem = str(exc)
            journal.write(Answer(i, cp.name, cp.prompt, cp.kind, answer, now(), at_s, defaulted, cp.expect))

    @staticmethod
    def _exit_code(status: str, codes: list[int]) -> int:
        """The worst of the day: interrupted, a drill that could not run, a failed verdict, an
        inconclusive one, else passed."""
        if status == "interrupted":
            return EXIT_INTERRUPTED
        for worst in (EXIT_PLATFORM, EXIT_BAD_INPUT, EXIT_VERDICT_FAILED, EXIT_INCONCLUSIVE):
            if worst in codes:
                return worst
        return EXIT_PASSED


def _read(cp: Checkpoint, typed: str, impact: float | None) -> tuple[str, float | None]:
    if cp.kind == "yes-no":
        return yes_no(typed), None
    if cp.kind == "time":
        return typed.strip(), seconds_after(typed, impact)
    return typed.strip(), None


def impact_wall(run_dir: Path) -> float | None:
    """The wall time of the drill's first fault: the journal's origin plus the fault's offset."""
    try:
        with (run_dir / "journal.jsonl").open(encoding="utf-8") as fh:
            meta: dict[str, Any] = json.loads(fh.readline())
        result: dict[str, Any] = json.loads((run_dir / "result.json").read_text())
        at = result["fault"]["injected_at_s"]
        return None if at is None else float(meta["origin_wall"]) + float(at)
    except (OSError, ValueError, KeyError, TypeError):
        return None
