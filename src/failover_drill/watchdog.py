"""The lease watchdog: a separate process that reverts a drill's faults if the drill dies
(SIGKILL, OOM) or overruns its lease, and stops the fleet the drill brought up."""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from failover_drill import obs
from failover_drill.recovery import pid_alive, recover, revert_open_faults

log = obs.get(__name__)


def spawn(state_dir: Path, owner_pid: int, lease_s: float, log_file: Path) -> subprocess.Popen[bytes]:
    log_file.parent.mkdir(parents=True, exist_ok=True)
    with log_file.open("ab") as out:
        return subprocess.Popen(
            [
                sys.executable,
                "-m",
                "failover_drill.watchdog",
                "--state",
                str(state_dir),
                "--owner",
                str(owner_pid),
                "--lease-s",
                str(lease_s),
            ],
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )


def watch(state_dir: Path, owner_pid: int, lease_s: float, poll_s: float = 0.25) -> str:
    """Until the owner dies or its lease ends, then revert. A plain loop: it is no retry of a
    failing call (tenacity's business) but a watch whose end is itself the event."""
    deadline = time.monotonic() + lease_s
    while True:
        if not pid_alive(owner_pid):
            report = recover(state_dir)
            log.warning(
                "drill process died: faults reverted",
                owner=owner_pid,
                reverted=report.reverted,
                orphans=report.orphans,
            )
            return "owner-died"
        if time.monotonic() > deadline:
            report = revert_open_faults(state_dir, only_owner=owner_pid)
            log.warning("lease expired: faults reverted", owner=owner_pid, reverted=report.reverted)
            return "lease-expired"
        time.sleep(poll_s)


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description="failover-drill lease watchdog")
    p.add_argument("--state", type=Path, required=True)
    p.add_argument("--owner", type=int, required=True)
    p.add_argument("--lease-s", type=float, required=True)
    a = p.parse_args(argv)
    obs.configure("info")
    # Terminal signals are for the drill; the drill ends the watchdog with SIGTERM when it is done.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, lambda *_: os._exit(0))
    watch(a.state, a.owner, a.lease_s)


if __name__ == "__main__":
    main()
