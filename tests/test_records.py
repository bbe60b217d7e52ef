"""Journal records: the typed records write exactly what drills have always written, and read it back.

tests/data/journal-records.jsonl holds one line of each kind taken from journals that real and
in-memory drills wrote before the records were typed."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from failover_drill.report import records
from failover_drill.traffic.samples import Sample

LINES = (Path(__file__).parent / "data" / "journal-records.jsonl").read_text().splitlines()


def typed(d: dict[str, Any]) -> Any:
    t = d["t"]
    if t == "meta":
        return records.MetaRecord.from_json(d)
    if t == "ev":
        return records.event_from_json(d)
    if t == "pe":
        return records.PlatformEventRecord.from_json(d)
    if t == "payments":
        return records.PaymentsRecord.from_json(d)
    if t == "gen":
        return records.GenRecord.from_json(d)
    assert t == "s"
    return Sample.from_json(d)


@pytest.mark.parametrize("line", LINES, ids=[f"{json.loads(x)['t']}-{json.loads(x).get('kind', '')}" for x in LINES])
def test_every_record_writes_the_line_it_was_read_from(line: str) -> None:
    rec = typed(json.loads(line))
    assert not isinstance(rec, records.OtherEvent)
    assert json.dumps(rec.to_json(), separators=(",", ":")) == line


def test_the_fixture_has_every_kind() -> None:
    kinds = {(d["t"], d.get("kind") if d["t"] == "ev" else None) for d in map(json.loads, LINES)}
    assert kinds == {
        ("meta", None),
        ("ev", "phase"),
        ("ev", "fault_injected"),
        ("ev", "fault_reverted"),
        ("ev", "end"),
        ("pe", None),
        ("s", None),
        ("gen", None),
        ("payments", None),
    }


def test_a_fault_event_records_the_midpoint_and_the_spread() -> None:
    ev = records.FaultEvent.timed("fault_injected", 1.0, 1.5, {"kind": "region-loss"}, "e1", {"pids": [1]})
    assert ev.to_json() == {
        "t": "ev",
        "kind": "fault_injected",
        "at": 1.25,
        "took_ms": 500.0,
        "fault": {"kind": "region-loss"},
        "entry": "e1",
        "details": {"pids": [1]},
    }
    assert "details" not in records.FaultEvent.timed("fault_reverted", 2.0, 2.0, {}, "e1").to_json()


def test_older_and_newer_records_still_read() -> None:
    # a gen record from before early sends were counted; an event kind this version does not know
    gen = records.GenRecord.from_json({"t": "gen", "workers": 2, "scheduled": 5, "sent": 5, "completed": 5})
    assert gen.workers == 2 and gen.stats.early == 0
    other = records.event_from_json({"t": "ev", "kind": "rollout_paused", "at": 3.0})
    assert isinstance(other, records.OtherEvent) and other.at == 3.0


def test_a_release_record_keeps_how_it_was_judged() -> None:
    rec = records.ReleaseRecord(4.0, "canary", 60.0, False, "prometheus")
    line = rec.to_json()
    assert line["analysis"] == "prometheus" and records.ReleaseRecord.from_json(line) == rec
    # a journal from before rollout.analysis: the web template was all there was
    old = {"t": "release", "at": 4.0, "version": "canary", "fail_pct": 60.0, "promote": False}
    assert records.ReleaseRecord.from_json(old).analysis == "web"
