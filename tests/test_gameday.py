"""Game days (issue 18) through the real entry point: drills in order on the real sandbox fleet,
answers typed at real prompts through a pseudo-terminal, Ctrl-C and resume, and the after-action
report built from what happened."""

from __future__ import annotations

import json
import os
import re
import signal
import sys
import time
from datetime import datetime
from pathlib import Path

import pexpect
import pytest
import yaml

from failover_drill.faults.ledger import FaultLedger
from failover_drill.gameday.answers import BadAnswer, seconds_after, yes_no
from failover_drill.gameday.day_journal import DayJournal
from failover_drill.recovery import ledger_path
from tests.conftest import ROOT, Fleet, assert_healthy, processes_under
from tests.test_cli_usage import ENTRY, cli

EXAMPLE = ROOT / "examples" / "gameday.yaml"
# Every drill of the example, on phases short enough for the suite: the definitions do not depend
# on phase length, and the example's own lengths are for a room of people.
SHORT = {"warmup_s": 1, "baseline_s": 2, "fault_s": 8, "recovery_s": 8}


def short_day(tmp_path: Path, drills: list[str] | None = None, **phases: float) -> Path:
    """The example game day, its drills (or the named ones) on short phases."""
    data = yaml.safe_load(EXAMPLE.read_text())
    if drills is not None:
        data["drills"] = [d for d in data["drills"] if d["name"] in drills]
    for d in data["drills"]:
        d["phases"] = {**SHORT, **phases}
        d.setdefault("slo", {})["stability_s"] = 2
    path = tmp_path / "gameday.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def gameday(*args: str, state: Path, runs: Path, timeout: float = 400) -> tuple[int, str]:
    import subprocess

    env = {**os.environ, "FAILOVER_DRILL_STATE": str(state)}
    out = subprocess.run(
        [str(ENTRY), "gameday", *args, "--runs-dir", str(runs)],
        capture_output=True, text=True, timeout=timeout, env=env, cwd=ROOT, check=False,
    )  # fmt: skip
    return out.returncode, out.stdout + out.stderr


def the_day(runs: Path) -> Path:
    (day_dir,) = sorted((runs / "gamedays").iterdir())[-1:]
    return day_dir


# A test run started in the background (`make test &`) ignores SIGINT, and children inherit that:
# the game day gets the default disposition a user's terminal gives it, then runs as itself.
EXEC_DEFAULT_SIGINT = (
    "import os, signal, sys; signal.signal(signal.SIGINT, signal.SIG_DFL); os.execv(sys.argv[1], sys.argv[1:])"
)


def spawn(*args: str, state: Path, runs: Path) -> pexpect.spawn:
    """The game day on a pseudo-terminal, as a facilitator runs it."""
    env = {**os.environ, "FAILOVER_DRILL_STATE": str(state)}
    return pexpect.spawn(
        sys.executable, ["-c", EXEC_DEFAULT_SIGINT, str(ENTRY), "gameday", *args, "--runs-dir", str(runs)],
        cwd=str(ROOT), env=env, encoding="utf-8", timeout=240, dimensions=(50, 200),
    )  # fmt: skip


# -- answers, without a fleet ---------------------------------------------------------------------


def test_a_time_is_read_as_seconds_or_as_the_clock_time_of_the_fault_day() -> None:
    impact = datetime(2026, 12, 3, 23, 59, 50).timestamp()
    assert seconds_after("95", impact) == 95.0 and seconds_after("+95s", impact) == 95.0
    assert seconds_after("00:00:05", impact) == 15.0  # after midnight: the next day
    assert seconds_after("23:59:40", impact) == -10.0  # noted before the fault: said as it is
    assert seconds_after("unknown", impact) is None and seconds_after("", impact) is None
    for bad in ("soon", "25:00", "12:61:00", "-5"):
        with pytest.raises(BadAnswer):
            seconds_after(bad, impact)
    assert yes_no("Y") == "yes" and yes_no("no") == "no" and yes_no("") == ""
    with pytest.raises(BadAnswer):
        yes_no("maybe")


def test_answers_piped_in_at_once_are_read_one_per_question_and_the_rest_take_defaults() -> None:
    """Read from the descriptor itself: a buffered reader once held the second line where
    select() could not see it, and that question waited out its timeout."""
    import io

    from failover_drill.gameday.model import Checkpoint, GameDayDrill
    from failover_drill.gameday.room import TerminalRoom

    r, w = os.pipe()
    os.write(w, b"\ns\nyes\n")  # run drill 1, skip drill 2, answer the first checkpoint
    said = io.StringIO()
    room = TerminalRoom(r, said)
    drill = GameDayDrill.model_validate({"name": "d", "faults": [{"kind": "region-loss"}]})
    assert room.before_drill(0, 2, drill) == "run" and room.before_drill(1, 2, drill) == "skip"
    # (had the line been held in a buffer, this would wait out its ten minutes: the suite's timeout)
    page = Checkpoint(name="page", prompt="Paged?", kind="yes-no", default="no", timeout_s=600)
    assert room.ask(page, None) == ("yes", False)
    notes = Checkpoint(name="notes", prompt="Notes?", timeout_s=0.2, default="none")
    assert room.ask(notes, None) == ("none", True)  # nothing typed within its timeout: the default
    assert "(no answer in time)" in said.getvalue()
    os.close(w)
    assert room.ask(page, None) == ("no", True)  # the input ended: defaults from here on
    assert room.before_drill(1, 2, drill) == "run"
    os.close(r)


def test_an_unknown_mesh_is_named_in_the_game_day_file_not_as_an_option(tmp_path: Path) -> None:
    path = tmp_path / "gameday.yaml"
    path.write_text(
        yaml.safe_dump(
            {"title": "t", "mesh": "linkerd", "drills": [{"name": "d", "faults": [{"kind": "region-loss"}]}]}
        )
    )
    state, runs = tmp_path / "state", tmp_path / "runs"
    code, out = gameday(str(path), "--yes", state=state, runs=runs, timeout=60)
    assert code == 2 and re.search(r"gameday\.yaml:\d+ \[mesh\]: .*unknown mesh profile 'linkerd'", out), out
    assert "--mesh" not in out and not runs.exists()


def test_a_report_names_the_room_and_the_questions_a_stopped_day_never_asked(tmp_path: Path) -> None:
    """The report's own logic, from a journal as a day killed between a drill and its questions
    leaves it (no fleet: the drill's run folder is gone, which the report must say plainly)."""
    from failover_drill.gameday import after_action
    from failover_drill.gameday.day_journal import Answer, DayStart, DrillStep

    journal = DayJournal(tmp_path / "day.jsonl")
    cps = [[["page-fired", "Did the page fire?"], ["ack", "When was it acknowledged?"]], []]
    journal.write(DayStart("t", "/x/day.yaml", "0" * 64, ["zone loss", "region loss"], 1.0, {"on-call": "Ada"}, cps))
    journal.write(DrillStep(0, "zone loss", "started", 2.0))
    journal.write(DrillStep(0, "zone loss", "finished", 3.0, str(tmp_path / "gone"), 0))
    journal.write(Answer(0, "page-fired", "Did the page fire?", "yes-no", "yes", 4.0))
    day = journal.read()
    assert day.unasked(0) == [("ack", "When was it acknowledged?")] and day.unasked(1) == []
    assert day.next_drill() == 1
    after_action.write(tmp_path)
    md = (tmp_path / "after-action.md").read_text()
    html = (tmp_path / "after-action.html").read_text()
    assert "In the room: on-call: Ada." in md and "In the room: on-call: Ada." in html
    assert "- When was it acknowledged? **not asked**" in md and "When was it acknowledged? <b>not asked</b>" in html
    assert "zone loss: 1 question(s) never asked" in md and "region loss: not run" in md
    assert not list(tmp_path.glob("*.png"))  # no result, no plot: nothing drawn


# -- bad input: named by drill and field, exit 2, nothing started -----------------------------------


@pytest.mark.parametrize(
    ("drill", "says"),
    [
        ({"name": "odd one", "faults": [{"kind": "meteor-strike"}]}, r"\[drills\.1\.faults\.0\]: drill 2 \('odd one'\): unknown fault 'meteor-strike'"),
        ({"name": "odd one"}, r":\d+ \[drills\.1\.faults\]: drill 2 \('odd one'\): Field required"),
        (
            {"name": "odd one", "faults": [{"kind": "region-loss"}], "checkpoints": [{"name": "page", "kind": "yes-no"}]},
            r"\[drills\.1\.checkpoints\.0\.prompt\]: drill 2 \('odd one'\): Field required",
        ),
        (
            {"name": "odd one", "faults": [{"kind": "zone-loss", "target": "mars-1a"}]},
            r"gameday\.yaml:\d+ \[drills\.1\.faults\.0\.target\]: drill 2 \('odd one'\): unknown zone 'mars-1a'",
        ),
        (
            {"name": "odd one", "faults": [{"kind": "region-loss"}],
             "checkpoints": [{"name": "ack", "prompt": "When?", "kind": "time", "default": "soon"}]},
            r"\[drills\.1\.checkpoints\.0\]: drill 2 \('odd one'\): .*default 'soon'",
        ),
        ({"name": "odd one", "faults": []}, r"\[drills\.1\]: drill 2 \('odd one'\): .*needs at least one fault \(or a rollout"),
        (
            {"name": "odd one", "faults": [], "rollout": {"fail_pct": 60}},
            r":\d+ \[drills\.1\.rollout\]: drill 2 \('odd one'\): a release needs Argo Rollouts, .*the sandbox has none",
        ),
    ],
    ids=["unknown-fault", "missing-faults", "checkpoint-without-prompt", "unknown-zone", "bad-default", "no-faults",
         "release-on-the-sandbox"],
)  # fmt: skip
def test_bad_input_is_named_by_drill_and_field_and_nothing_starts(
    drill: dict[str, object], says: str, tmp_path: Path
) -> None:
    path = tmp_path / "gameday.yaml"
    first = {"name": "fine", "faults": [{"kind": "region-loss"}]}
    path.write_text(yaml.safe_dump({"title": "t", "drills": [first, drill]}, sort_keys=False))
    state, runs = tmp_path / "state", tmp_path / "runs"
    code, out = gameday(str(path), "--yes", state=state, runs=runs, timeout=60)
    assert code == 2, out
    assert re.search(says, out), out
    assert "fix:" in out and "Traceback" not in out
    assert not runs.exists() and processes_under(state) == []


# -- on the real fleet ---------------------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_the_example_game_day_runs_with_yes_and_writes_both_reports(fleet: Fleet, tmp_path: Path) -> None:
    """`failover-drill gameday examples/gameday.yaml --yes` (its four drills on short phases)."""
    runs = tmp_path / "runs"
    code, out = gameday(str(short_day(tmp_path)), "--yes", state=fleet.state, runs=runs, timeout=600)
    assert code in (0, 1, 4), out  # passed, failed or inconclusive drills: the day itself completed
    assert "game day completed" in out
    day_dir = the_day(runs)
    md = (day_dir / "after-action.md").read_text()
    html = (day_dir / "after-action.html").read_text()
    day = DayJournal(day_dir / "day.jsonl").read()
    assert [s.status for s in day.steps.values()] == ["finished"] * 4
    for name in ("zone loss", "region loss", "link latency", "certificate expiry"):
        assert f"| {name} |" in md and f"{name}: " in html
    # every checkpoint took its default, and says so
    assert len(day.answers) == 7 and all(a.defaulted for a in day.answers)
    # the region-loss page defaulted to "yes" as expected; nothing else is off in its answers
    assert html.count("data:image/png;base64,") == 4
    assert "Error budget burned over the day" in md
    budget = sum(
        json.loads((Path(s.run_dir) / "result.json").read_text())["error_budget"]["budget_consumed_pct"]  # type: ignore[arg-type]
        for s in day.steps.values()
    )
    assert f"**{budget:.3g}%**" in md
    assert FaultLedger(ledger_path(fleet.state)).open_entries() == []
    assert_healthy(fleet)
    assert fleet.platform.is_up()  # the fleet was up before the day: the day left it up


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_answers_typed_at_the_prompts_land_in_the_report_at_their_times(fleet: Fleet, tmp_path: Path) -> None:
    """The facilitator runs drill 1, answers its checkpoints (one time in seconds, one as a
    clock time), then ends the day; `--resume` runs the rest and the next game day of the same
    file is compared with this one."""
    path = short_day(tmp_path, ["region loss", "link latency"], fault_s=6)
    runs = tmp_path / "runs"
    child = spawn(str(path), state=fleet.state, runs=runs)
    child.expect(r"Next: drill 1/2 'region loss'")
    child.expect(r"q end the game day > ")
    child.sendline("")
    child.expect(r"Did the availability page fire\? \(y/n, Enter for 'yes'\) > ", timeout=120)
    child.sendline("n")  # expected yes: a follow-up item
    child.expect(r"When was the page acknowledged\? .*> ")
    child.sendline("soon")  # not a time: asked again, saying what it takes
    child.expect(r"give seconds after the fault")
    child.expect(r"> ")
    # the wall-clock time somebody noted, 20 s after the fault
    (run_dir,) = [p for p in runs.iterdir() if "region-loss" in p.name and not p.is_symlink()]
    meta = json.loads((run_dir / "journal.jsonl").read_text().splitlines()[0])
    impact = meta["origin_wall"] + json.loads((run_dir / "result.json").read_text())["fault"]["injected_at_s"]
    noted = datetime.fromtimestamp(impact + 20).strftime("%H:%M:%S")
    child.sendline(noted)
    child.expect(r"Which runbook step did on-call follow\? .*> ")
    child.sendline("step 3: drain the region at the front door")
    child.expect(r"Next: drill 2/2 'link latency'")
    child.expect(r"> ")
    child.sendline("q")
    child.expect(pexpect.EOF, timeout=60)
    child.close()
    assert child.exitstatus in (0, 1, 4), child.before
    day_dir = the_day(runs)
    day = DayJournal(day_dir / "day.jsonl").read()
    assert day.ends[-1].status == "ended" and day.next_drill() == 1
    answers = {a.checkpoint: a for a in day.answers}
    assert answers["page-fired"].answer == "no" and not answers["page-fired"].defaulted
    at_s = answers["page-acknowledged"].at_s
    assert at_s is not None and 19 <= at_s <= 20, at_s  # the clock time drops the fault's sub-second
    assert answers["runbook-step"].answer == "step 3: drain the region at the front door"
    md = (day_dir / "after-action.md").read_text()
    assert f"When was the page acknowledged? **{at_s:.0f} s after the fault (at {noted})**" in md
    assert "Which runbook step did on-call follow? **step 3: drain the region at the front door**" in md
    assert "\u201cDid the availability page fire?\u201d was answered no, expected yes" in md
    assert "link latency: not run" in md

    # --resume: the drill after the one the day stopped at, then the day is complete
    code, out = gameday(str(path), "--yes", "--resume", str(day_dir), state=fleet.state, runs=runs)
    assert code in (0, 1, 4), out
    day = DayJournal(day_dir / "day.jsonl").read()
    assert [day.steps[i].status for i in (0, 1)] == ["finished", "finished"]
    assert day.ends[-1].status == "completed"
    assert len([p for p in runs.iterdir() if "region-loss" in p.name]) == 1  # drill 1 did not run again

    # the next game day of the same file compares itself with this one
    time.sleep(1.1)  # game-day folders are named by the second they start
    code, out = gameday(str(path), "--yes", state=fleet.state, runs=runs)
    assert code in (0, 1, 4), out
    md = (the_day(runs) / "after-action.md").read_text()
    assert f"## Against the previous game day ({day_dir.name})" in md
    assert re.search(r"\| region loss \| \w+ \| [\d.]+ s \| \w+, [\d.]+ s \| [+-][\d.]+ s \| [\d.]+ / [\d.]+ \|", md), (
        md
    )
    # what the room saw then (typed) and now (--yes: the defaults), question by question
    assert (
        f"| region loss | When was the page acknowledged? | not known | {at_s:.0f} s after the fault (at {noted}) |"
        in md
    )
    assert "| region loss | Did the availability page fire? | yes | no |" in md
    assert FaultLedger(ledger_path(fleet.state)).open_entries() == []
    assert_healthy(fleet)


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_a_skipped_drill_the_live_dashboard_and_ctrl_c_at_a_checkpoint(fleet: Fleet, tmp_path: Path) -> None:
    """The facilitator skips drill 1 and runs drill 2 while the dashboard shows its phase,
    countdown, success ratio, p99, serving regions and the day's budget; Ctrl-C at its question
    ends the day with a partial report; `--resume` asks that question before anything else."""
    path = short_day(tmp_path, ["region loss", "link latency"])
    runs = tmp_path / "runs"
    child = spawn(str(path), state=fleet.state, runs=runs)
    child.expect(r"Next: drill 1/2 'region loss'.*q end the game day > ")
    child.sendline("s")
    child.expect(r"Next: drill 2/2 'link latency'.*q end the game day > ")
    child.sendline("")
    child.expect(r"drill 2/2 'link latency' · budget burned today [\d.]+%")
    # the live line, redrawn five times a second (rich colours its numbers: escapes between fields)
    child.expect(
        r"fault.{0,40} s left in the phase.{0,30}ok .{0,30}%.{0,30}p99 .{0,30} ms.{0,30}served by us-east1", timeout=60
    )
    child.expect(r"Did the latency alert fire\? .*> ", timeout=120)
    child.sendintr()  # Ctrl-C typed at the question
    child.expect(pexpect.EOF, timeout=60)
    child.close()
    assert child.exitstatus == 130 or child.signalstatus == signal.SIGINT, child.before
    day_dir = the_day(runs)
    day = DayJournal(day_dir / "day.jsonl").read()
    assert day.ends[-1].status == "interrupted"
    assert day.steps[0].status == "skipped" and day.steps[1].status == "finished" and day.answers == []
    md = (day_dir / "after-action.md").read_text()
    assert "region loss: skipped; run it at the next game day" in md
    assert "## 2. link latency: " in md and "![timeline of link latency](drill-2.png)" in md
    assert (day_dir / "drill-2.png").read_bytes().startswith(b"\x89PNG")
    assert "- Did the latency alert fire? **not asked**" in md and "link latency: 1 question(s) never asked" in md
    assert "## Limits over the day" in md and "| link latency |" in md
    assert FaultLedger(ledger_path(fleet.state)).open_entries() == []

    # every drill is behind the day, one question is not: --resume asks it, and the day is complete
    code, out = gameday(str(path), "--yes", "--resume", str(day_dir), state=fleet.state, runs=runs)
    assert code in (0, 1, 4), out
    day = DayJournal(day_dir / "day.jsonl").read()
    assert [(a.i, a.checkpoint, a.defaulted) for a in day.answers] == [(1, "latency-alert", True)]
    assert day.ends[-1].status == "completed" and len([p for p in runs.iterdir() if "link-latency" in p.name]) == 1
    assert "not asked" not in (day_dir / "after-action.md").read_text()


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_a_drill_aborted_from_the_dashboard_is_reverted_and_the_day_goes_on(fleet: Fleet, tmp_path: Path) -> None:
    """Ctrl-C while drill 1's fault is on: its faults are reverted, the room chooses to go on,
    and the next drill is offered."""
    path = short_day(tmp_path, ["region loss", "link latency"], fault_s=30)
    runs = tmp_path / "runs"
    child = spawn(str(path), state=fleet.state, runs=runs)
    child.expect(r"Next: drill 1/2 'region loss'.*q end the game day > ")
    child.sendline("")
    child.expect(r"Ctrl-C aborts the drill")
    child.expect(r"fault.{0,40} s left in the phase", timeout=60)
    assert any(e.state == "active" for e in FaultLedger(ledger_path(fleet.state)).open_entries())
    child.sendintr()
    child.expect(r"Drill 'region loss' was aborted; its faults are reverted\..*q end the game day > ", timeout=120)
    assert FaultLedger(ledger_path(fleet.state)).open_entries() == []
    child.sendline("")  # go on
    child.expect(r"Next: drill 2/2 'link latency'.*q end the game day > ")
    child.sendline("q")
    child.expect(pexpect.EOF, timeout=60)
    child.close()
    day = DayJournal(the_day(runs) / "day.jsonl").read()
    assert day.steps[0].status == "aborted" and 1 not in day.steps and day.ends[-1].status == "ended"
    assert_healthy(fleet)


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_sigterm_at_a_prompt_ends_the_day_as_ctrl_c_does(fleet: Fleet, tmp_path: Path) -> None:
    runs = tmp_path / "runs"
    child = spawn(str(short_day(tmp_path, ["region loss"])), state=fleet.state, runs=runs)
    child.expect(r"q end the game day > ")
    child.kill(signal.SIGTERM)  # a terminal closed, a CI job cancelled
    child.expect(pexpect.EOF, timeout=60)
    child.close()
    assert child.exitstatus == 130, child.before
    day_dir = the_day(runs)
    assert DayJournal(day_dir / "day.jsonl").read().ends[-1].status == "interrupted"
    assert "region loss: not run" in (day_dir / "after-action.md").read_text()


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_a_day_killed_between_a_drill_and_its_questions_is_put_right_and_resumed(tmp_path: Path) -> None:
    """A fresh machine's path: the day brings up a fleet of its own. Killed outright (SIGKILL, no
    handler runs) at a question, it leaves that fleet running with a dead owner and no report;
    `--resume` stops that fleet, brings up a fresh one, asks the questions left, runs the next
    drill, writes the report and stops the fleet it started."""
    state, runs = tmp_path / "state", tmp_path / "runs"
    path = short_day(tmp_path, ["region loss", "link latency"])
    child = spawn(str(path), state=state, runs=runs)
    child.expect(r"bringing up the sandbox fleet for the day")
    child.expect(r"Next: drill 1/2 'region loss'.*q end the game day > ", timeout=180)
    child.sendline("")
    child.expect(r"Did the availability page fire\? .*> ", timeout=180)
    child.sendline("y")
    child.expect(r"When was the page acknowledged\? .*> ")
    child.kill(signal.SIGKILL)
    child.expect(pexpect.EOF, timeout=30)
    child.close()
    assert processes_under(state) != []  # the fleet it owned, left behind
    day_dir = the_day(runs)
    assert not (day_dir / "after-action.md").exists()
    day = DayJournal(day_dir / "day.jsonl").read()
    assert day.ends == [] and day.steps[0].status == "finished" and day.next_drill() == 1

    try:
        code, out = gameday(str(path), "--yes", "--resume", str(day_dir), state=state, runs=runs, timeout=400)
        assert code in (0, 1, 4), out
        assert "left by a run that died: stopped a sandbox left behind by a drill that died" in out, out
        assert "bringing up the sandbox fleet for the day" in out and "stopping the sandbox fleet" in out, out
        day = DayJournal(day_dir / "day.jsonl").read()
        assert day.ends[-1].status == "completed"
        assert [day.steps[i].status for i in (0, 1)] == ["finished", "finished"]
        asked = [(a.i, a.checkpoint, a.defaulted) for a in day.answers]
        assert asked == [
            (0, "page-fired", False), (0, "page-acknowledged", True), (0, "runbook-step", True), (1, "latency-alert", True)
        ]  # fmt: skip
        md = (day_dir / "after-action.md").read_text()
        assert "not asked" not in md and "drill-1.png" in md and "drill-2.png" in md
        assert FaultLedger(ledger_path(state)).open_entries() == []
        assert processes_under(state) == []
    finally:
        cli("down", state=state)


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_ctrl_c_during_a_drill_reverts_it_and_resume_goes_on_from_the_next(fleet: Fleet, tmp_path: Path) -> None:
    import subprocess

    path = short_day(tmp_path, ["region loss", "link latency"], fault_s=30)
    runs = tmp_path / "runs"
    env = {**os.environ, "FAILOVER_DRILL_STATE": str(fleet.state)}
    # A test run started in the background ignores SIGINT, and children inherit that: the game
    # day gets the default disposition a terminal gives it.
    proc = subprocess.Popen(
        [sys.executable, "-c",
         "import os, signal, sys; signal.signal(signal.SIGINT, signal.SIG_DFL); os.execv(sys.argv[1], sys.argv[1:])",
         str(ENTRY), "gameday", str(path), "--yes", "--runs-dir", str(runs)],
        cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    ledger = FaultLedger(ledger_path(fleet.state))
    deadline = time.monotonic() + 120
    while not any(e.state == "active" for e in ledger.open_entries()):
        assert proc.poll() is None and time.monotonic() < deadline, proc.communicate()[0][-3000:]
        time.sleep(0.1)
    proc.send_signal(signal.SIGINT)
    out, _ = proc.communicate(timeout=120)
    assert proc.returncode == 130, out
    assert ledger.open_entries() == []
    assert_healthy(fleet)
    day_dir = the_day(runs)
    day = DayJournal(day_dir / "day.jsonl").read()
    assert day.steps[0].status == "aborted" and day.ends[-1].status == "interrupted"
    md = (day_dir / "after-action.md").read_text()
    assert "region loss: aborted" in md and "--resume" in md  # a partial report, saying what is left
    assert f"--resume {day_dir}" in out

    # a changed file is refused: its drills may no longer be the ones this day started with
    changed = tmp_path / "changed.yaml"
    changed.write_text(path.read_text().replace("link latency", "link latency 2"))
    code, said = gameday(str(changed), "--yes", "--resume", str(day_dir), state=fleet.state, runs=runs)
    assert code == 2 and "changed since this day started" in said, said

    code, said = gameday(str(path), "--yes", "--resume", str(day_dir), state=fleet.state, runs=runs, timeout=300)
    assert code in (0, 1, 4), said
    day = DayJournal(day_dir / "day.jsonl").read()
    assert day.steps[0].status == "aborted" and day.steps[1].status == "finished"
    assert ledger.open_entries() == []


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_a_day_on_a_fleet_in_use_is_refused_with_nothing_written(fleet: Fleet, tmp_path: Path) -> None:
    from failover_drill.ownership import FleetOwnership

    owner = FleetOwnership(fleet.state)
    owner.acquire("another drill")
    try:
        out = cli("gameday", str(short_day(tmp_path)), "--yes", "--runs-dir", str(tmp_path / "runs"), state=fleet.state)
    finally:
        owner.release()
    assert out.returncode == 3 and "in use by another drill" in out.stderr, out.stderr
    assert not (tmp_path / "runs").exists()


# -- the same game day as a Chaos Toolkit experiment set -------------------------------------------

SHIPPED_SET = ROOT / "experiments" / "gameday"


def test_the_example_day_as_experiments_is_the_shipped_set_and_valid(tmp_path: Path) -> None:
    from chaoslib.experiment import ensure_experiment_is_valid
    from chaoslib.loader import load_experiment

    from failover_drill.adapters.chaostoolkit.validation import problems
    from tests.conftest import topology

    out = cli("gameday", str(EXAMPLE), "--chaostoolkit", str(tmp_path / "set"), state=tmp_path / "state")
    assert out.returncode == 0, out.stderr
    written = sorted(p.name for p in (tmp_path / "set").iterdir())
    assert written == sorted(p.name for p in SHIPPED_SET.glob("*.json")) and len(written) == 4
    for name in written:
        # regenerate with `failover-drill gameday examples/gameday.yaml --chaostoolkit experiments/gameday`
        assert (tmp_path / "set" / name).read_text() == (SHIPPED_SET / name).read_text(), name
        exp = load_experiment(str(SHIPPED_SET / name))
        ensure_experiment_is_valid(exp)
        assert problems(exp, {}, None, topology(), "us-east1") == [], name
    region = json.loads((SHIPPED_SET / "02-region-loss.json").read_text())
    inject = region["method"][0]
    assert inject["provider"]["arguments"] == {"kind": "region-loss", "target": "us-east1", "mode": "kill"}
    assert inject["pauses"] == {"after": 25.0}  # the drill's fault phase; its recovery settles after the revert
    assert region["method"][-1]["pauses"] == {"after": 12.0}

    # a compound drill has no single-fault experiment: left out, and said
    data = yaml.safe_load(EXAMPLE.read_text())
    data["drills"][0]["faults"].append({"kind": "link-latency", "target": "eu-west1", "at_s": 5})
    compound = tmp_path / "compound.yaml"
    compound.write_text(yaml.safe_dump(data, sort_keys=False))
    out = cli("gameday", str(compound), "--chaostoolkit", str(tmp_path / "set2"), state=tmp_path / "state")
    assert out.returncode == 0 and "drill 1 ('zone loss') left out: 2 faults" in out.stderr, out.stderr
    assert len(list((tmp_path / "set2").iterdir())) == 3


@pytest.mark.slow
def test_a_drill_of_the_day_runs_through_chaos_run(fleet: Fleet, tmp_path: Path) -> None:
    from tests.test_chaostoolkit import _chaos_run

    exp = json.loads((SHIPPED_SET / "03-link-latency.json").read_text())
    exp["method"][0]["pauses"] = {"after": 5}  # 15 s of 150 ms in the room; 5 s proves the same here
    env = {"FAILOVER_DRILL_STATE": str(fleet.state), "FAILOVER_DRILL_RUNS": str(tmp_path / "runs")}
    journal = _chaos_run(exp, tmp_path, env=env)
    by_name = {r["activity"]["name"]: r for r in journal["run"]}
    assert journal["status"] == "completed" and by_name["inject-link-latency"]["status"] == "succeeded"
    assert journal["failover_drill"]["scenario"] == "link-latency-us-east1"
    assert FaultLedger(ledger_path(fleet.state)).open_entries() == []
    assert_healthy(fleet)
