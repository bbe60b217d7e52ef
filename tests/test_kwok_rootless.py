"""The kwok platform without root (issue 13): `up` makes a user namespace of the fleet's own, where
the fleet is root and builds its pod network as it does on a host as root; every command on that
fleet enters it; `down` leaves nothing.

Run as root (CI, this machine), the commands run as uid 1000 in a user namespace made for the test,
with no capability over the host's network: `ip netns add` is refused there, which the test
checks first. That is the position of a user without root. Run as an ordinary user, the commands
run as they are. Needs go (the binaries) and a kernel that allows unprivileged user namespaces.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from failover_drill.platforms.kwok import userns
from tests.conftest import ROOT, processes_under
from tests.test_cli_usage import ENTRY
from tests.test_kwok_platform import kwok_topology

pytestmark = [
    pytest.mark.slow,
    pytest.mark.timeout(3600),
    pytest.mark.skipif(shutil.which("go") is None, reason="needs the go command to build Kubernetes from source"),
    pytest.mark.skipif(userns.unavailable() is not None, reason=f"user namespaces: {userns.unavailable()}"),
]


@pytest.fixture
def as_user() -> Iterator[list[str]]:
    """The prefix that runs a command as a user without root."""
    if os.geteuid() != 0:
        yield []
        return
    # One namespace for every command of the test: a fleet's namespace made from inside one can
    # only be entered from inside it (as, on a real host, everything is inside the first one).
    keeper = subprocess.Popen(
        ["unshare", "--user", "--map-user=1000", "--map-group=1000", "--", sys.executable, "-c",
         "import signal; signal.pause()"],
        start_new_session=True,
    )  # fmt: skip
    deadline = time.monotonic() + 10
    while "signal.pause" not in Path(f"/proc/{keeper.pid}/cmdline").read_text(errors="replace"):
        assert time.monotonic() < deadline and keeper.poll() is None
        time.sleep(0.01)
    try:
        yield ["nsenter", f"--target={keeper.pid}", "--user", "--preserve-credentials", "--"]
    finally:
        keeper.send_signal(signal.SIGKILL)
        keeper.wait()


def run(prefix: list[str], *args: str, state: Path, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*prefix, *args], capture_output=True, text=True, timeout=timeout, cwd=ROOT, check=False,
        env={**os.environ, "FAILOVER_DRILL_STATE": str(state)},
    )  # fmt: skip


def test_a_kwok_fleet_without_root_drills_a_zone_loss_and_leaves_nothing(as_user: list[str], tmp_path: Path) -> None:
    state, runs = tmp_path / "state", tmp_path / "runs"
    fd = str(ENTRY)
    # No privilege over the host's network: what the pods' network would need as root is refused.
    probe = run(as_user, "sh", "-c", "id -u; ip netns add failover-drill-probe", state=state)
    assert probe.returncode != 0 and probe.stdout.strip() != "0", probe

    doctor = run(as_user, fd, "doctor", "--platform", "kwok", state=state)
    assert doctor.returncode == 0 and "not root: in a user namespace" in doctor.stdout, doctor.stdout + doctor.stderr

    topo = str(kwok_topology(tmp_path, 6.0))
    up = run(as_user, fd, "up", "--platform", "kwok", "--topology", topo, state=state, timeout=900)
    try:
        assert up.returncode == 0, up.stdout + up.stderr
        assert "no root: the fleet gets a user namespace of its own" in up.stderr, up.stderr
        host_ns = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True, check=False).stdout
        assert "fd-" not in host_ns  # the pods' network is inside the fleet's namespace, not the host's

        # Inside, where `enter` runs a command: root of the namespace, with the pods' network
        inside = run(as_user, fd, "enter", "--", "sh", "-c", "id -u; ip netns list", state=state)
        assert inside.returncode == 0 and inside.stdout.splitlines()[0] == "0", inside
        assert "fd-" in inside.stdout, inside.stdout

        # A process that cannot run itself again inside (Chaos Toolkit's) is told how to enter.
        lib = run(
            as_user, sys.executable, "-c",
            "from pathlib import Path; from failover_drill.platforms.registry import open_platform; "
            f"open_platform('kwok', Path({str(state)!r}))",
            state=state,
        )  # fmt: skip
        assert lib.returncode != 0 and f"failover-drill enter --state-dir {state} -- COMMAND" in lib.stderr, lib

        drill = run(
            as_user, fd, "drill", "--platform", "kwok", "--topology", topo, "--fault", "zone-loss",
            "--runs-dir", str(runs), "--set", "phases.warmup_s=1", "--set", "phases.baseline_s=4",
            "--set", "phases.fault_s=25", "--set", "phases.recovery_s=10", "--set", "limits.rto_s=60",
            "--no-plot", state=state, timeout=600,
        )  # fmt: skip
        assert drill.returncode in (0, 1), drill.stdout + drill.stderr
        result = json.loads((runs / "latest" / "result.json").read_text())
        assert result["platform"] == "kwok" and result["measurement"]["valid"], result["measurement"]
        fo = result["failover"]
        # Kubernetes' own timing, as with root: the node marked NotReady, its endpoints removed.
        assert fo["recovered"] and fo["node_not_ready_s"] is not None and fo["endpoints_removed_s"] is not None, fo
        assert result["payments"]["lost"] == 0
    finally:
        down = run(as_user, fd, "down", "--platform", "kwok", state=state, timeout=300)
    assert down.returncode == 0, down.stdout + down.stderr
    assert processes_under(state) == []
    assert not (state / "kwok" / "kwok-namespace.json").exists()
