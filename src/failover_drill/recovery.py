"""Undo whatever the ledger still holds, and stop fleets whose owning drill is gone.

Used by the drill's own finally, by the lease watchdog after a crash, and by `failover-drill recover`.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import psutil

from failover_drill import obs, rollouts
from failover_drill.errors import DrillError
from failover_drill.faults.ledger import FaultLedger, ledger_path
from failover_drill.platforms.base import Platform
from failover_drill.platforms.registry import all_platforms, open_platform

log = obs.get(__name__)


def pid_alive(pid: int | None) -> bool:
    """A process with this pid runs (a zombie does not; one we may not inspect is taken to)."""
    if not pid:
        return False
    try:
        return psutil.Process(pid).status() not in (psutil.STATUS_ZOMBIE, psutil.STATUS_DEAD)
    except psutil.NoSuchProcess:
        return False
    except psutil.AccessDenied:
        return True


@dataclass
class RecoveryReport:
    reverted: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)
    # What a drill that died left running and recovery stopped (fleets, traffic workers).
    orphans: list[str] = field(default_factory=list)
    repaired: list[str] = field(default_factory=list)
    unrepaired: list[str] = field(default_factory=list)
    ledger_set_aside: list[Path] = field(default_factory=list)


def revert_open_faults(
    state_dir: Path,
    *,
    only_owner: int | None = None,
    expired_only: bool = False,
    platform: Platform | None = None,
) -> RecoveryReport:
    """platform: the caller's own (a drill reverting its faults); others are opened by name."""
    report = RecoveryReport()
    ledger = FaultLedger(ledger_path(state_dir))
    now = time.time()
    for entry in ledger.open_entries():
        if only_owner is not None and entry.owner_pid != only_owner:
            continue
        if expired_only and entry.lease_expires_wall > now and pid_alive(entry.owner_pid):
            continue
        label = entry.spec().label()
        try:
            owner = platform if platform is not None and platform.name == entry.platform else None
            (owner or open_platform(entry.platform, state_dir)).revert(entry.spec(), entry.revert)
        except DrillError as exc:
            ledger.update(entry.id, error=str(exc))
            report.failed.append(f"{label}: {exc}")
            log.error("revert failed", fault=label, error=str(exc))
            continue
        ledger.update(entry.id, state="reverted", reverted_wall=time.time())
        report.reverted.append(label)
        log.info("fault reverted", fault=label, entry=entry.id)
    ledger.prune()
    report.ledger_set_aside = ledger.set_aside
    return report


def recover(state_dir: Path, *, stop_orphans: bool = True) -> RecoveryReport:
    """Repair what faults left on the live fleets, revert every open fault; stop what drills that
    died left running."""
    # Reality before records (issue 16): a torn ledger must not hide a frozen replica, and a
    # damaged state file is salvaged (marked processes stopped) before the ledger is worked.
    repaired: list[str] = []
    unrepaired: list[str] = []
    if stop_orphans:
        for platform in all_platforms(state_dir):
            try:
                repaired += platform.repair_leftovers()
            except DrillError as exc:
                unrepaired.append(str(exc))
    report = revert_open_faults(state_dir)
    report.repaired, report.unrepaired = repaired, unrepaired
    if stop_orphans:
        _lift_dead_drills_freezes(state_dir, report)
        _restore_dead_drills_releases(state_dir, report)
        for platform in all_platforms(state_dir):
            report.orphans += platform.recover_orphans(pid_alive)
    return report


def _this(path: Path) -> Callable[[rollouts.FreezeRecord], bool]:
    return lambda r: r.path == path


def _restore_dead_drills_releases(state_dir: Path, report: RecoveryReport) -> None:
    """A drill's release (scenario `rollout:`) is rolled back to the stable version when the drill
    ends; if it died instead, here."""
    try:
        for rec in rollouts.release_files(state_dir):
            if pid_alive(rec.owner_pid):
                continue
            platform = open_platform(rec.platform, state_dir)
            report.repaired += rollouts.restore_stable(platform, state_dir, rec.owner_pid)
    except DrillError as exc:
        report.unrepaired.append(str(exc))


def _lift_dead_drills_freezes(state_dir: Path, report: RecoveryReport) -> None:
    """A drill's deploy freeze (--freeze-deploys) outlives the drill only if it died: lift it. A
    person's freeze (no owner) stays theirs to thaw."""
    try:
        dead = [r for r in rollouts.records(state_dir) if r.owner_pid is not None and not pid_alive(r.owner_pid)]
        for rec in dead:
            platform = open_platform(rec.platform or "kwok", state_dir)
            lines = rollouts.thaw(platform, state_dir, _this(rec.path))
            report.repaired += [f"{line} (a deploy freeze left by drill pid {rec.owner_pid})" for line in lines]
    except DrillError as exc:
        report.unrepaired.append(str(exc))
