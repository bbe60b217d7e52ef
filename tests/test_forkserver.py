"""The fork server starts a batch of processes as spawn() would (own session, the fleet's mark,
a log, pid and start ticks recorded), and when it breaks the batch still starts, one by one."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import pytest

from failover_drill.platforms import processes as procs
from failover_drill.platforms.polling import poll

ROOT = Path(__file__).resolve().parents[1]


def _specs(tmp: Path, n: int) -> list[procs.ProcSpec]:
    return [
        procs.ProcSpec(
            name=f"p{i}",
            kind="replica",
            argv=[sys.executable, "-m", "tests.forkable", str(tmp / f"p{i}.json"), "30"],
            log=str(tmp / "logs" / f"p{i}.log"),
        )
        for i in range(n)
    ]


@pytest.mark.parametrize("broken", [False, True], ids=["forked", "server-broken"])
def test_a_batch_starts_marked_in_sessions_of_their_own(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, broken: bool
) -> None:
    monkeypatch.chdir(ROOT)  # `-m tests.forkable` resolves from the project root
    if broken:
        monkeypatch.setenv("FORKABLE_BREAK", "1")
    fleet = tmp_path / "fleet"
    specs = _specs(tmp_path, 4)
    try:
        procs.spawn_forked(specs, fleet=fleet)
        assert all(procs.alive(s) for s in specs)
        assert {p.pid for p in procs.marked(fleet)} == {s.pid for s in specs}

        files = [tmp_path / f"p{i}.json" for i in range(4)]
        assert poll(lambda: None if all(f.exists() for f in files) else "waiting", 10, 0.02) is None
        for spec, f in zip(specs, files, strict=True):
            me = json.loads(f.read_text())
            assert me["pid"] == spec.pid and me["sid"] == spec.pid  # its own session, as spawn() gives
            assert me["argv"] == spec.argv[3:]
            assert me["closed_peer"] == "BrokenPipeError"  # a fresh interpreter's SIGPIPE: ignored
            assert poll(lambda spec=spec: None if "started" in procs.log_tail(spec.log) else "no", 10, 0.02) is None
        server_log = (tmp_path / "logs" / "forkserver.log").read_text()
        assert ("preload broke" in server_log) is broken
    finally:
        assert procs.stop_all(specs) == []
    assert procs.marked(fleet) == []
    assert os.path.exists(tmp_path / "logs" / "p0.log")
