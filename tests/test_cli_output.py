"""What the CLI prints when stdout or stderr is not a terminal (issue 15, point 3): the scorecard
as plain `key: value` lines, logs as JSON lines; --log-format chooses the log format outright.
Through the installed entry point, on a journal a real sandbox region-loss drill wrote (its
samples thinned to every eighth to keep the file small)."""

from __future__ import annotations

import json
import os
import pty
import shutil
import subprocess
from pathlib import Path

from tests.test_cli_usage import ENTRY, cli

RUN = Path(__file__).parent / "data" / "run-region-loss"


def a_run(tmp_path: Path, corrupt: bool = False) -> Path:
    run = tmp_path / "run"
    shutil.copytree(RUN, run)
    if corrupt:
        with (run / "journal.jsonl").open("a") as fh:
            fh.write('{"t":"s","q":99999,"s":1.0\n')
    return run


def test_the_scorecard_is_plain_key_value_lines_when_stdout_is_not_a_terminal(tmp_path: Path) -> None:
    out = cli("report", str(a_run(tmp_path)), state=tmp_path / "state")
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert lines and all(": " in line and not line.startswith(" ") for line in lines), out.stdout
    keys = [line.split(": ", 1)[0] for line in lines]
    # long labels and values stay on one line: no wrapping at 80 columns, no table padding
    assert "Payments acknowledged / lost / charged twice / charged unacknowledged (whole run)" in keys
    assert any(line.startswith("report: ") and line.endswith("report.html") for line in lines)
    assert "verdict: PASSED" in lines
    assert not any(line != line.rstrip() for line in lines)
    # a label never holds the ': ' that separates it from its value (one did: 'Kubernetes: node ...')
    assert "Kubernetes node NotReady / endpoints removed" in keys
    # each figure named for what it measures (issue 15 point 11): no "time to detect" that is the
    # first error, no "failback" beside "back home" that readers take for the same thing
    assert {
        "First user-visible error after the fault (TTD)",
        "Success ratio back at the SLO after revert (failback)",
        "Traffic back on the fault's target after revert",
    } <= set(keys)
    assert not {"Time to detect (first user-visible error)", "Failback after revert"} & set(keys)


def test_logs_are_json_lines_when_stderr_is_not_a_terminal(tmp_path: Path) -> None:
    out = cli("report", str(a_run(tmp_path, corrupt=True)), state=tmp_path / "state")
    assert out.returncode == 0, out.stderr
    records = [json.loads(line) for line in out.stderr.splitlines() if line.startswith("{")]
    assert any(r["event"] == "journal line skipped" and r["level"] == "warning" for r in records), out.stderr
    console = cli("--log-format", "console", "report", str(a_run(tmp_path / "c", corrupt=True)), state=tmp_path)
    assert "journal line skipped" in console.stderr and '"event"' not in console.stderr


def _stderr_on_a_terminal(*args: str, tmp_path: Path) -> str:
    primary, secondary = pty.openpty()
    env = {**os.environ, "FAILOVER_DRILL_STATE": str(tmp_path / "state")}
    proc = subprocess.run(
        [str(ENTRY), *args], stdout=subprocess.DEVNULL, stderr=secondary, env=env, timeout=60, check=False
    )
    os.close(secondary)
    chunks = []
    try:
        while data := os.read(primary, 65536):
            chunks.append(data)
    except OSError:  # EIO: the terminal's other end is closed, everything has been read
        pass
    os.close(primary)
    assert proc.returncode == 0
    return b"".join(chunks).decode()


def test_at_a_terminal_logs_are_for_people_unless_json_is_asked_for(tmp_path: Path) -> None:
    people = _stderr_on_a_terminal("report", str(a_run(tmp_path / "a", corrupt=True)), tmp_path=tmp_path)
    assert "journal line skipped" in people and '"event"' not in people
    machines = _stderr_on_a_terminal(
        "--log-format", "json", "report", str(a_run(tmp_path / "b", corrupt=True)), tmp_path=tmp_path
    )
    line = next(x for x in machines.splitlines() if "journal line skipped" in x)
    assert json.loads(line)["event"] == "journal line skipped"


def test_the_verdict_shows_each_check_measured_against_its_limit_with_units(tmp_path: Path) -> None:
    """Point 12: not just "every limit held" but which limits, what was measured, in what unit."""
    run = a_run(tmp_path)
    out = cli("report", str(run), state=tmp_path / "state")
    assert out.returncode == 0, out.stderr
    assert "check failover time (TTR): 3.79 s, limit <= 30 s, held" in out.stdout.splitlines()
    assert "check payments lost: 0 payments, limit <= 0 payments, held" in out.stdout.splitlines()
    assert "% of the error budget, limit <= 5% of the error budget, held" in out.stdout
    md = (run / "report.md").read_text()
    assert "every limit held" not in md
    assert "| failover time (TTR) | 3.79 s | <= 30 s | held |" in md
    assert "| payments charged twice | 0 payments | <= 0 payments | held |" in md
    page = (run / "report.html").read_text()
    assert "<td>failover time (TTR)</td><td>3.79 s</td><td>&lt;= 30 s</td><td>held</td>" in page
    # what report.md has, report.html has too
    assert "Latency by phase" in page and "<th>p99</th>" in page
    assert "What the platform saw" in page and "health_check" in page
    result = json.loads((run / "result.json").read_text())
    assert {c["name"]: c["unit"] for c in result["verdict"]["checks"]}["rto"] == "s"


def test_the_fault_row_shows_a_mode_only_for_faults_that_have_one(tmp_path: Path) -> None:
    """Point 15: a blackout or brownout has no mode, so none is shown (it used to read "()" or "None")."""
    from failover_drill.report.markdown import fault_label

    run = a_run(tmp_path)
    out = cli("report", str(run), state=tmp_path / "state")
    assert "Fault: region-loss us-east1 (kill)" in out.stdout.splitlines()
    assert fault_label({"kind": "blackout", "target": None, "mode": None}) == "blackout"
    assert fault_label({"kind": "brownout", "target": "us-east1-a", "mode": None}) == "brownout us-east1-a"
    assert (
        fault_label({"kind": "zone-loss", "target": "us-east1-a", "mode": "freeze"}) == "zone-loss us-east1-a (freeze)"
    )


def test_the_plot_names_an_inconclusive_verdict_not_failed(tmp_path: Path) -> None:
    """The plot's title used to say FAILED for a drill whose stopwatch the machine starved."""
    from failover_drill.report.plot import timeline_png
    from failover_drill.report.result import Replay, build_result

    journal = a_run(tmp_path) / "journal.jsonl"
    replay = Replay(journal)
    result = build_result(journal, replay)
    result["verdict"] = {**result["verdict"], "passed": False, "inconclusive": True}
    png = timeline_png(result, replay)
    assert b"Title" in png and "— INCONCLUSIVE".encode() in png and b"FAILED" not in png
