"""The README's benchmark table is what bench/figures.json says (issue 20: regenerated from
`make bench`'s one document, never edited by hand), and the table is built from figures, not
from text: a missing or failed script says why, a figure past its target says no."""

from __future__ import annotations

import copy
import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench"))

import readme_table  # noqa: E402
from run_all import last_json  # noqa: E402


def test_the_readme_table_is_generated_from_the_figures() -> None:
    out = subprocess.run(
        [sys.executable, "bench/readme_table.py", "--check"], check=False, cwd=ROOT, capture_output=True, text=True
    )
    assert out.returncode == 0, out.stdout + out.stderr
    doc = json.loads(readme_table.FIGURES.read_text())
    assert doc["summary"] == readme_table.summary(doc)  # the stored rows are the figures' own
    assert f"Measured {doc['date']}" in (ROOT / "README.md").read_text()


def test_rows_follow_the_figures_and_say_what_is_missing() -> None:
    doc = json.loads(readme_table.FIGURES.read_text())
    rows = {r["figure"]: r for r in readme_table.summary(doc)}
    up = next(r for f, r in rows.items() if f.startswith("sandbox `failover-drill up`"))
    slow = copy.deepcopy(doc)
    slow["scripts"]["sandbox_timing.py"]["figures"]["up_s_median"] = 9.5
    slow_up = next(r for r in readme_table.summary(slow) if r["figure"] == up["figure"])
    assert slow_up["met"] is False and slow_up["measured"].startswith("9.50 s")

    broken = copy.deepcopy(doc)
    broken["scripts"]["wrk_baseline.py"] = {"date": doc["date"], "exit": 1, "seconds": 1.0, "figures": None}
    del broken["scripts"]["kwok_platform.py"]
    text = readme_table.render({**broken, "summary": None})
    assert "no figures (exit 1)" in text and "| kwok platform (issue 13 targets) | not run |" in text


def test_a_scripts_json_is_found_after_its_log_lines() -> None:
    printed = '2026-12-04 [info] sandbox up seconds=1.7 stages={"a": 1}\n{\n  "x": {\n    "y": [1, 2]\n  }\n}\n'
    assert last_json(printed) == {"x": {"y": [1, 2]}}
    assert last_json("no json here\n{ broken") is None
