"""runs/<id>/: journal, result.json, report.md, report.html; runs/latest points at the newest."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from failover_drill.report.history import History
from failover_drill.report.html import render_html
from failover_drill.report.markdown import render_markdown
from failover_drill.report.result import Replay, build_result


def new_run_dir(runs_dir: Path, run_id: str) -> Path:
    d = runs_dir / run_id
    d.mkdir(parents=True, exist_ok=False)
    return d


def write_reports(run_dir: Path, *, plot: bool = True) -> dict[str, Any]:
    """Rebuild every report from the journal alone (report.html without its plot if not `plot`)."""
    journal = run_dir / "journal.jsonl"
    replay = Replay(journal)  # read once for every report
    result = build_result(journal, replay)
    (run_dir / "result.json").write_text(json.dumps(result, indent=2))
    (run_dir / "report.md").write_text(render_markdown(result))
    (run_dir / "report.html").write_text(render_html(result, replay, plot=plot))
    return result


def finish_run(run_dir: Path, *, plot: bool = True) -> dict[str, Any]:
    result = write_reports(run_dir, plot=plot)
    History(run_dir.parent / "history.sqlite").record(result)
    latest = run_dir.parent / "latest"
    tmp = run_dir.parent / f".latest.{os.getpid()}"
    tmp.unlink(missing_ok=True)
    tmp.symlink_to(run_dir.name)
    os.replace(tmp, latest)
    return result
