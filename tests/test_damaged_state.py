"""Damaged fleet state (issue 16, point 2): garbage, `{}`, `[]`, `null` or a process without fields
in fleet.json is one clear error with a way out, and `down` / `recover` stop the fleet anyway,
finding its processes by the mark each carries (FAILOVER_DRILL_FLEET)."""

from __future__ import annotations

import signal
import sys
import time
from pathlib import Path

import pytest

from failover_drill.errors import StateDamaged
from failover_drill.platforms import processes as procs
from failover_drill.platforms.registry import platform_dir
from failover_drill.platforms.sandbox.platform import SandboxPlatform
from failover_drill.platforms.state_file import StateFile
from tests.conftest import run_cli, topology

PROCESS_WITHOUT_FIELDS = (
    '{"mesh": "istio", "layout": {"state_dir": "/x", "frontdoor_port": 1, "frontdoor_admin_port": 2,'
    ' "regions": [], "gateways": {}, "replicas": []},\n "processes": [\n  {}\n ]}'
)
DAMAGED = {
    "garbage": b"\x89PNG\r\n\x1a\n\x00\x00garbage",
    "truncated": b'{"mesh": "istio", "processes": [{"name": "frontd',
    "empty-object": b"{}",
    "list": b"[]",
    "null": b"null",
    "process-without-fields": PROCESS_WITHOUT_FIELDS.encode(),
}


def marked_in_proc(mark: Path) -> list[int]:
    """Live processes whose environment carries the fleet's mark, read straight from /proc."""
    needle = f"FAILOVER_DRILL_FLEET={mark}".encode()
    found = []
    for p in Path("/proc").iterdir():
        if not p.name.isdigit():
            continue
        try:
            environ = (p / "environ").read_bytes().split(b"\0")
            stat = (p / "stat").read_text()
        except OSError:
            continue
        if needle in environ and stat[stat.rindex(")") + 2] not in "ZX":
            found.append(int(p.name))
    return found


def spawn_sleeper(fleet: Path, name: str = "sleeper") -> procs.ProcSpec:
    spec = procs.ProcSpec(
        name=name, kind="replica", argv=[sys.executable, "-c", "import time; time.sleep(300)"], log=str(fleet / "x.log")
    )
    procs.spawn(spec, fleet=fleet)
    return spec


@pytest.mark.parametrize("content", DAMAGED.values(), ids=DAMAGED.keys())
def test_damaged_state_is_one_error_naming_the_file_and_the_way_out(tmp_path: Path, content: bytes) -> None:
    platform = SandboxPlatform(tmp_path)
    platform.fleet_file.write_bytes(content)
    for call in (platform.status, platform.is_up, platform.owner_pid, platform.entrypoint):
        with pytest.raises(StateDamaged) as e:
            call()
        msg = str(e.value)
        assert str(platform.fleet_file) in msg and "failover-drill down" in msg
        assert "no process of this fleet is running" in msg
    assert e.value.exit_code == 3


def test_a_process_without_fields_names_the_field_and_its_line(tmp_path: Path) -> None:
    platform = SandboxPlatform(tmp_path)
    platform.fleet_file.write_text(PROCESS_WITHOUT_FIELDS)
    with pytest.raises(StateDamaged, match=r"fleet\.json:3 does not look like sandbox state \(processes\.0\.name"):
        platform.status()


def test_spawned_processes_carry_the_fleet_mark_and_are_found_by_it(tmp_path: Path) -> None:
    fleet = tmp_path.resolve()
    specs = [spawn_sleeper(fleet, f"s{i}") for i in range(2)]
    other = spawn_sleeper(tmp_path / "other")
    try:
        assert sorted(p.pid for p in procs.marked(fleet)) == sorted(s.pid for s in specs if s.pid)
        assert sorted(marked_in_proc(fleet)) == sorted(s.pid for s in specs if s.pid)
        assert specs[0].pid is not None
        procs.signal_proc(specs[0], signal.SIGSTOP)  # a frozen process must still stop
        found, survivors = procs.stop_marked(fleet, grace_s=2)
        assert found == 2 and survivors == [] and marked_in_proc(fleet) == []
        assert procs.alive(other)
    finally:
        procs.stop_all([*specs, other])


def test_processes_running_without_a_state_file_are_not_a_fleet_that_is_down(tmp_path: Path) -> None:
    platform = SandboxPlatform(tmp_path)
    spec = spawn_sleeper(platform.state_dir)
    try:
        with pytest.raises(StateDamaged, match="is missing; 1 process of this fleet still running"):
            platform.status()
        with pytest.raises(StateDamaged):
            SandboxPlatform(tmp_path, topology()).up()  # a new fleet would strand this one
        platform.down()
        assert not procs.alive(spec) and marked_in_proc(platform.state_dir) == []
        assert not platform.status().up
    finally:
        procs.stop_all([spec])


def test_state_file_without_schema_still_refuses_a_non_mapping(tmp_path: Path) -> None:
    (tmp_path / "fleet.json").write_text("[1, 2]")
    with pytest.raises(StateDamaged, match="holds list"):
        StateFile(tmp_path, "kind").load()


@pytest.mark.slow
@pytest.mark.parametrize(
    ("damage", "way_out"), [("garbage", "recover"), ("null", "down")], ids=["garbage-recover", "null-down"]
)
def test_a_fleet_with_damaged_state_is_stopped_through_the_cli(tmp_path: Path, damage: str, way_out: str) -> None:
    state = tmp_path / "state"
    mark = platform_dir(state, "sandbox").resolve()
    up = run_cli("up", state=state)
    try:
        assert up.returncode == 0, up.stderr
        running = marked_in_proc(mark)
        assert len(running) == 25, running  # 18 replicas, 3 control planes, 3 gateways, 1 front door
        (mark / "fleet.json").write_bytes(DAMAGED[damage])

        status = run_cli("status", state=state)
        assert status.returncode == 3 and "Traceback" not in status.stderr
        assert "fleet is down" not in status.stdout  # `null` used to say so while 25 processes ran
        first = status.stderr.splitlines()[0]
        assert first.startswith(f"error: sandbox state {mark}/fleet.json") and "25 processes" in first, status.stderr
        assert "failover-drill down" in status.stderr

        out = run_cli(way_out, state=state)
        assert out.returncode == 0, out.stdout + out.stderr
        assert "Traceback" not in out.stderr
        assert "stopped 25 processes marked as this fleet's" in out.stdout + out.stderr
        deadline = time.monotonic() + 5
        while marked_in_proc(mark) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert marked_in_proc(mark) == []
        assert [p.name for p in mark.glob("fleet.json.damaged-*")], "the damaged file is kept aside"

        # Afterwards the state dir is usable again: nothing up, nothing to do.
        again = run_cli("status", state=state)
        assert again.returncode == 0 and "fleet is down" in again.stdout
        assert run_cli("down", state=state).returncode == 0
    finally:
        procs.stop_marked(mark)
