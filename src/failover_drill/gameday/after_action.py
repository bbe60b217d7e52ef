"""The after-action report of a game day (after-action.md and a self-contained after-action.html),
rebuilt from the day's journal and its drills' own runs: per drill the scorecard, the checks and
the plot with the room's observations on the same time axis; the budget burned over the day; a
comparison with the previous game day of the same file; and follow-up items from what failed."""

from __future__ import annotations

import base64
import html
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from failover_drill.errors import DrillError
from failover_drill.gameday.day_journal import Answer, Day, DayJournal, DrillStep
from failover_drill.report.markdown import check_rows, scorecard_rows, verdict_word
from failover_drill.report.plot import timeline_png
from failover_drill.report.result import Replay


@dataclass
class DrillReport:
    i: int
    name: str
    status: str  # finished, skipped, aborted, error, not run
    run_dir: Path | None
    result: dict[str, Any] | None
    answers: list[Answer] = field(default_factory=list)
    detail: str | None = None
    # Prompts of checkpoints the day never asked (it stopped between the drill and its questions).
    unasked: list[str] = field(default_factory=list)

    def verdict(self) -> str:
        if self.result is None:
            return self.status
        word = verdict_word(self.result["verdict"])
        return word if self.status == "finished" else f"{self.status} ({word.lower()}, partial)"

    def ttr(self) -> float | None:
        return None if self.result is None else self.result["failover"]["ttr_s"]

    def budget_pct(self) -> float:
        return 0.0 if self.result is None else float(self.result["error_budget"]["budget_consumed_pct"])

    def fault_start_s(self) -> float | None:
        return None if self.result is None else self.result["fault"]["injected_at_s"]


def _result(run_dir: Path | None) -> dict[str, Any] | None:
    if run_dir is None:
        return None
    try:
        data: dict[str, Any] = json.loads((run_dir / "result.json").read_text())
        return data
    except (OSError, ValueError):
        return None


def drills_of(day: Day) -> list[DrillReport]:
    out = []
    for i, name in enumerate(day.start.drills):
        step: DrillStep | None = day.steps.get(i)
        run_dir = Path(step.run_dir) if step is not None and step.run_dir else None
        status = "not run" if step is None else ("interrupted" if step.status == "started" else step.status)
        out.append(
            DrillReport(
                i,
                name,
                status,
                run_dir,
                _result(run_dir),
                [a for a in day.answers if a.i == i],
                None if step is None else step.detail,
                [prompt for _, prompt in day.unasked(i)],
            )
        )
    return out


def budget_so_far(journal_path: Path) -> float:
    """The error budget (% of 30 days) the day's drills have burned so far, for the live view."""
    try:
        return round(sum(d.budget_pct() for d in drills_of(DayJournal(journal_path).read())), 4)
    except DrillError:
        return 0.0


def previous_day(day_dir: Path, day: Day) -> tuple[Path, list[DrillReport]] | None:
    """The latest earlier game day of the same file (same title and file name)."""
    name = Path(day.start.file).name
    for other in sorted(day_dir.parent.iterdir(), reverse=True):
        if other.name >= day_dir.name or not (other / "day.jsonl").is_file():
            continue
        try:
            d = DayJournal(other / "day.jsonl").read()
        except DrillError:
            continue
        if d.start.title == day.start.title and Path(d.start.file).name == name:
            return other, drills_of(d)
    return None


def _seconds(v: float | None) -> str:
    return "—" if v is None else f"{v:.2f} s"


def observation_text(a: Answer) -> str:
    if a.kind == "time":
        if a.at_s is None:
            return "not known"
        return f"{a.at_s:.0f} s after the fault" + (f" (at {a.answer})" if ":" in a.answer else "")
    if a.kind == "yes-no":
        return {"yes": "yes", "no": "no"}.get(a.answer, "not known")
    return a.answer or "(no answer)"


def follow_ups(drills: list[DrillReport]) -> list[str]:
    """What the day says needs doing: each failed check, each answer that was not the expected
    one, each drill the day did not finish."""
    items: list[str] = []
    for d in drills:
        if d.status in ("skipped", "not run"):
            items.append(f"{d.name}: {d.status}; run it at the next game day")
            continue
        if d.status in ("aborted", "interrupted", "error"):
            why = f" ({d.detail.splitlines()[0]})" if d.detail else ""
            items.append(f"{d.name}: {d.status}{why}; `failover-drill gameday FILE --resume DIR` runs what is left")
        r = d.result
        if r is not None:
            v = r["verdict"]
            if v["inconclusive"]:
                items.append(
                    f"{d.name}: inconclusive, the machine starved the stopwatch ({v['reasons'][0]}); "
                    "rerun it on a quieter machine before trusting its figures"
                )
            for what, measured, limit, ok in check_rows(v):
                if ok != "held":
                    items.append(
                        f"{d.name}: {what} was {measured} against a limit of {limit}; find why and who fixes it"
                    )
        if d.unasked:
            items.append(
                f"{d.name}: {len(d.unasked)} question(s) never asked; `--resume DIR` asks them before the next drill"
            )
        for a in d.answers:
            if a.expect is not None and a.answer != a.expect:
                got = a.answer or "not known"
                items.append(f"{d.name}: \u201c{a.prompt}\u201d was answered {got}, expected {a.expect}")
    return items


@dataclass
class DaySummary:
    day: Day
    drills: list[DrillReport]
    previous: tuple[Path, list[DrillReport]] | None
    items: list[str]

    @property
    def status(self) -> str:
        return self.day.ends[-1].status if self.day.ends else "still running (or killed)"

    def total_budget(self) -> float:
        return sum(d.budget_pct() for d in self.drills)


def summarize(day_dir: Path) -> DaySummary:
    day = DayJournal(day_dir / "day.jsonl").read()
    drills = drills_of(day)
    return DaySummary(day, drills, previous_day(day_dir, day), follow_ups(drills))


def _local(wall: float) -> str:
    return datetime.fromtimestamp(wall).strftime("%Y-%m-%d %H:%M:%S")


COMPARISON_HEAD = ("drill", "now", "TTR now", "then", "TTR change", "budget % now / then")


def _budget(d: DrillReport) -> str:
    return "—" if d.result is None else f"{d.budget_pct():.3g}"


def _payments(d: DrillReport) -> str:
    return "—" if d.result is None else f"{d.result['payments']['lost']} / {d.result['payments']['duplicated']}"


def _comparison_rows(s: DaySummary) -> list[tuple[str, ...]]:
    """Per drill: verdict, TTR and budget now against the previous day's."""
    if s.previous is None:
        return []
    before = {d.name: d for d in s.previous[1]}
    rows: list[tuple[str, ...]] = []
    for d in s.drills:
        p = before.get(d.name)
        if p is None:
            rows.append((d.name, d.verdict(), _seconds(d.ttr()), "new", "—", f"{_budget(d)} / —"))
            continue
        now_ttr, then_ttr = d.ttr(), p.ttr()
        change = "—" if now_ttr is None or then_ttr is None else f"{now_ttr - then_ttr:+.2f} s"
        then = f"{p.verdict()}, {_seconds(p.ttr())}"
        rows.append((d.name, d.verdict(), _seconds(d.ttr()), then, change, f"{_budget(d)} / {_budget(p)}"))
    return rows


ANSWERS_HEAD = ("drill", "question", "now", "then")


def _answer_changes(s: DaySummary) -> list[tuple[str, str, str, str]]:
    """The room's answers now against the previous day's, question by question (e.g. how long
    the page took to be acknowledged then and now)."""
    if s.previous is None:
        return []
    before = {d.name: {a.checkpoint: a for a in d.answers} for d in s.previous[1]}
    rows = []
    for d in s.drills:
        then = before.get(d.name, {})
        for a in d.answers:
            p = then.get(a.checkpoint)
            rows.append((d.name, a.prompt, observation_text(a), "—" if p is None else observation_text(p)))
    return rows


LIMITS_HEAD = ("drill", "check", "measured", "limit", "")


def _limit_rows(s: DaySummary) -> list[tuple[str, str, str, str, str]]:
    """Every drill's verdict checks in one table: what held and what broke over the day."""
    return [(d.name, *row) for d in s.drills if d.result is not None for row in check_rows(d.result["verdict"])]


def _roles(s: DaySummary) -> str:
    return "; ".join(f"{role}: {who}" for role, who in s.day.start.roles.items())


def _md_table(head: tuple[str, ...], rows: Sequence[tuple[str, ...]]) -> list[str]:
    def cell(x: str) -> str:
        return x.replace("|", "\\|").replace("\n", " ")

    return [
        f"| {' | '.join(head)} |",
        "|" + "---|" * len(head),
        *(f"| {' | '.join(cell(c) for c in r)} |" for r in rows),
    ]


def render_markdown(s: DaySummary, plots: dict[int, str] | None = None) -> str:
    """plots: drill index -> the file name of its timeline PNG beside the report."""
    plots = plots or {}
    start = s.day.start
    lines = [
        f"# After-action report: {start.title}",
        "",
        f"Game day file `{Path(start.file).name}` (sha256 {start.sha256[:12]}), started {_local(start.wall)}; "
        f"ended: **{s.status}**.",
        "",
        f"Error budget burned over the day: **{s.total_budget():.3g}%** of the 30-day budget.",
        "",
        *([f"In the room: {_roles(s)}.", ""] if s.day.start.roles else []),
        "| # | drill | verdict | failover time (TTR) | budget % | payments lost / charged twice |",
        "|---|---|---|---|---|---|",
    ]
    for d in s.drills:
        lines.append(f"| {d.i + 1} | {d.name} | {d.verdict()} | {_seconds(d.ttr())} | {_budget(d)} | {_payments(d)} |")
    limits = _limit_rows(s)
    if limits:
        lines += ["", "## Limits over the day", ""]
        lines += _md_table(LIMITS_HEAD, limits)
    rows = _comparison_rows(s)
    if rows:
        assert s.previous is not None
        lines += ["", f"## Against the previous game day ({s.previous[0].name})", ""]
        lines += _md_table(COMPARISON_HEAD, rows)
        answers = _answer_changes(s)
        if answers:
            lines += ["", "What the room saw, then and now:", ""]
            lines += _md_table(ANSWERS_HEAD, answers)
    lines += ["", "## Follow-up items", ""]
    lines += [f"- {x}" for x in s.items] or [
        "- none: every drill ran, every limit held, every answer was the expected one"
    ]
    for d in s.drills:
        lines += ["", f"## {d.i + 1}. {d.name}: {d.verdict()}", ""]
        if d.detail:
            lines += [f"> {d.detail.splitlines()[0]}", ""]
        if d.answers or d.unasked:
            lines += ["What the room saw:", ""]
            lines += [
                f"- {a.prompt} **{observation_text(a)}**" + (" (default)" if a.defaulted else "") for a in d.answers
            ]
            lines += [f"- {prompt} **not asked**" for prompt in d.unasked]
            lines.append("")
        if d.result is not None:
            if plots.get(d.i):
                lines += [f"![timeline of {d.name}]({plots[d.i]})", ""]
            lines += ["| | |", "|---|---|"]
            lines += [f"| {k} | {v} |" for k, v in scorecard_rows(d.result)]
            checks = check_rows(d.result["verdict"])
            if checks:
                lines += ["", "| check | measured | limit | |", "|---|---|---|---|"]
                lines += [f"| {w} | {m} | {lim} | {ok} |" for w, m, lim, ok in checks]
            if d.run_dir is not None:
                lines += ["", f"Run: `{d.run_dir}`."]
    return "\n".join(lines) + "\n"


CSS = """body{font-family:system-ui,sans-serif;max-width:1150px;margin:2em auto;color:#222}
table{border-collapse:collapse;margin:.6em 0}td,th{border:1px solid #ccc;padding:.25em .6em;text-align:left}
.pass{color:#1a7f37}.fail{color:#cf222e}.other{color:#9a6700}img{max-width:100%}.meta{color:#555}"""


def _observations(d: DrillReport) -> list[tuple[float, str]]:
    t0 = d.fault_start_s()
    if t0 is None:
        return []
    return [(t0 + a.at_s, a.checkpoint) for a in d.answers if a.kind == "time" and a.at_s is not None]


def _png(d: DrillReport) -> bytes | str | None:
    """The drill's timeline with the room's times marked; a str says why there is none."""
    if d.result is None or d.run_dir is None:
        return None
    try:
        return timeline_png(d.result, Replay(d.run_dir / "journal.jsonl"), _observations(d))
    except (DrillError, OSError) as exc:
        return f"no plot: {exc}"


def _plot(d: DrillReport, png: bytes | str | None) -> str:
    if png is None:
        return ""
    if isinstance(png, str):
        return f"<p class='meta'>{html.escape(png)}</p>"
    return f'<img alt="timeline of {html.escape(d.name)}" src="data:image/png;base64,{base64.b64encode(png).decode()}">'


def render_html(s: DaySummary, pngs: dict[int, bytes | str | None] | None = None) -> str:
    pngs = pngs if pngs is not None else {d.i: _png(d) for d in s.drills}
    e = html.escape
    start = s.day.start

    def table(head: tuple[str, ...], body: list[tuple[str, ...]]) -> str:
        th = "".join(f"<th>{e(h)}</th>" for h in head)
        trs = "".join("<tr>" + "".join(f"<td>{e(c)}</td>" for c in row) + "</tr>" for row in body)
        return f"<table><tr>{th}</tr>{trs}</table>"

    def cls(verdict: str) -> str:
        return "pass" if verdict == "PASSED" else "fail" if verdict == "FAILED" else "other"

    summary = table(
        ("#", "drill", "verdict", "failover time (TTR)", "budget %", "payments lost / charged twice"),
        [
            (
                str(d.i + 1),
                d.name,
                d.verdict(),
                _seconds(d.ttr()),
                _budget(d),
                _payments(d),
            )
            for d in s.drills
        ],
    )
    parts = [
        f"<!doctype html><html lang='en'><head><meta charset='utf-8'><title>After-action: {e(start.title)}</title>"
        f"<style>{CSS}</style></head><body>",
        f"<h1>After-action report: {e(start.title)}</h1>",
        f"<p class='meta'>Game day file <code>{e(Path(start.file).name)}</code>, started {e(_local(start.wall))}; "
        f"ended: <b>{e(s.status)}</b>. Error budget burned over the day: <b>{s.total_budget():.3g}%</b> of the "
        "30-day budget.</p>",
        *([f"<p class='meta'>In the room: {e(_roles(s))}.</p>"] if s.day.start.roles else []),
        summary,
    ]
    limits = _limit_rows(s)
    if limits:
        parts += ["<h2>Limits over the day</h2>", table(LIMITS_HEAD, list[tuple[str, ...]](limits))]
    rows = _comparison_rows(s)
    if rows and s.previous is not None:
        parts += [
            f"<h2>Against the previous game day ({e(s.previous[0].name)})</h2>",
            table(COMPARISON_HEAD, rows),
        ]
        answers = _answer_changes(s)
        if answers:
            parts += ["<p>What the room saw, then and now:</p>", table(ANSWERS_HEAD, list[tuple[str, ...]](answers))]
    items = "".join(f"<li>{e(x)}</li>" for x in s.items) or "<li>none</li>"
    parts += [f"<h2>Follow-up items</h2><ul>{items}</ul>"]
    for d in s.drills:
        v = d.verdict()
        parts.append(f"<h2 class='{cls(v)}'>{d.i + 1}. {e(d.name)}: {e(v)}</h2>")
        if d.detail:
            parts.append(f"<p class='meta'>{e(d.detail.splitlines()[0])}</p>")
        if d.answers or d.unasked:
            obs = "".join(
                f"<li>{e(a.prompt)} <b>{e(observation_text(a))}</b>{' (default)' if a.defaulted else ''}</li>"
                for a in d.answers
            ) + "".join(f"<li>{e(prompt)} <b>not asked</b></li>" for prompt in d.unasked)
            parts.append(f"<p>What the room saw (times are marked on the plot):</p><ul>{obs}</ul>")
        if d.result is not None:
            parts.append(_plot(d, pngs.get(d.i)))
            checks = check_rows(d.result["verdict"])
            if checks:
                parts.append(table(("check", "measured", "limit", ""), list(checks)))
            parts.append(table(("", ""), list(scorecard_rows(d.result))))
    parts.append("</body></html>")
    return "\n".join(parts) + "\n"


def write(day_dir: Path) -> Path:
    """after-action.md and after-action.html in the day's folder; returns the Markdown's path."""
    s = summarize(day_dir)
    # Drawn once: the HTML carries each plot inline, the Markdown links the same PNG beside it.
    pngs = {d.i: _png(d) for d in s.drills}
    plots: dict[int, str] = {}
    for i, png in pngs.items():
        if isinstance(png, bytes):
            plots[i] = f"drill-{i + 1}.png"
            (day_dir / plots[i]).write_bytes(png)
    md = day_dir / "after-action.md"
    md.write_text(render_markdown(s, plots))
    (day_dir / "after-action.html").write_text(render_html(s, pngs))
    return md
