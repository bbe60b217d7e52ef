"""Argo Rollouts across the fleet's regions (one controller per region cluster): what each Rollout
is doing, the kubectl plugin's actions on it, and the deploy freeze. The controllers decide; this
only asks them (platforms/kube/rollouts.py: the plugin's own patches) and reports what the API
servers say. The freeze is written down (rollouts-freeze.json in the state directory) so that
thawing resumes exactly what the freeze paused, even from another process or after a crash."""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from failover_drill.errors import ConfigError, PlatformError
from failover_drill.platforms.base import Platform
from failover_drill.platforms.kube import rollouts as ro

if TYPE_CHECKING:
    from failover_drill.platforms.kube.client import Kube

FREEZE_FILE = "rollouts-freeze.json"
DEFAULT_ROLLOUT = "payment-gateway"
DEFAULT_NAMESPACE = "payments"

# The kubectl plugin's verbs: `kubectl argo rollouts abort|retry rollout|promote [--full]|pause`.
ACTIONS: dict[str, tuple[Callable[[Kube, str, str], None], str]] = {
    "abort": (ro.abort, "abort"),
    "retry": (ro.retry, "retry"),
    "promote": (ro.resume, "promotion to the next step"),
    "promote-full": (ro.promote_full, "full promotion"),
    "pause": (ro.pause, "pause"),
}


@dataclass(frozen=True)
class RegionRollout:
    region: str
    state: ro.RolloutState

    def line(self) -> str:
        s = self.state
        flags = [f for f, on in (("aborted", s.aborted), ("paused", s.paused)) if on] + s.pause_reasons
        step = "" if s.step is None else f" step {s.step}"
        extra = f" ({', '.join(flags)})" if flags else ""
        return f"{self.region}: {s.namespace}/{s.name} {s.phase or 'no phase yet'}{step}{extra}"

    def as_json(self) -> dict[str, object]:
        s = self.state
        return {
            "region": self.region,
            "name": s.name,
            "namespace": s.namespace,
            "phase": s.phase,
            "step": s.step,
            "aborted": s.aborted,
            "paused": s.paused,
            "pause_reasons": s.pause_reasons,
            "message": s.message,
        }


@contextlib.contextmanager
def _kubes(platform: Platform, region: str | None) -> Iterator[dict[str, Kube]]:
    kubes = platform.region_kubes()
    try:
        if region is not None and region not in kubes:
            raise ConfigError(
                f"no region {region!r} in the fleet", field="--region", hint=f"choose one of {', '.join(kubes)}"
            )
        yield {r: k for r, k in kubes.items() if region is None or r == region}
    finally:
        for k in kubes.values():
            k.close()


def status(platform: Platform, region: str | None = None, namespace: str | None = None) -> list[RegionRollout]:
    with _kubes(platform, region) as kubes:
        return [RegionRollout(r, s) for r, kube in kubes.items() for s in ro.rollouts(kube, namespace)]


def act(
    platform: Platform,
    action: str,
    name: str = DEFAULT_ROLLOUT,
    namespace: str = DEFAULT_NAMESPACE,
    region: str | None = None,
) -> list[str]:
    """One of ACTIONS on the Rollout in every region that has it (or only region's)."""
    if action not in ACTIONS:
        raise ConfigError(
            f"unknown rollout action {action!r}", field="action", hint=f"choose one of {', '.join(ACTIONS)}"
        )
    send, what = ACTIONS[action]
    out = []
    with _kubes(platform, region) as kubes:
        found = {r: ro.rollout(kube, name, namespace) for r, kube in kubes.items()}
        where = [r for r, state in found.items() if state is not None]
        if not where:
            present = sorted({f"{s.namespace}/{s.name}" for kube in kubes.values() for s in ro.rollouts(kube)})
            raise ConfigError(
                f"no Rollout {namespace}/{name} in {region or 'any region'}",
                field="--rollout",
                hint=f"Rollouts in the fleet: {', '.join(present)}" if present else "the fleet has no Rollout yet",
            )
        for r in where:
            send(kubes[r], name, namespace)
            out.append(f"{r}: asked the controller for the {what} of {namespace}/{name}")
    return out


@dataclass(frozen=True)
class FreezeRecord:
    """One freeze as written down: what it paused, by whom (None: a person, through the CLI or
    Chaos Toolkit; a pid: a drill, whose freeze `recover` lifts if the drill died) and where."""

    path: Path
    held: dict[str, list[str]]  # region -> namespace/name
    owner_pid: int | None
    platform: str | None


def _freeze_path(state_dir: Path, owner_pid: int | None) -> Path:
    return state_dir / (FREEZE_FILE if owner_pid is None else f"rollouts-freeze-{owner_pid}.json")


def _read(path: Path) -> FreezeRecord:
    try:
        data = json.loads(path.read_text())
        held = {str(r): [str(x) for x in refs] for r, refs in data["frozen"].items()}
        owner = data.get("owner_pid")
        return FreezeRecord(path, held, None if owner is None else int(owner), data.get("platform"))
    except (ValueError, KeyError, TypeError, AttributeError):
        raise PlatformError(
            f"{path} is damaged: which rollouts the freeze paused is unknown",
            hint="`failover-drill rollouts status` shows which are paused; resume each with "
            "`failover-drill rollouts promote --rollout NAME`, then delete the file",
        ) from None


def records(state_dir: Path) -> list[FreezeRecord]:
    if not state_dir.is_dir():
        return []
    return [_read(p) for p in sorted(state_dir.glob("rollouts-freeze*.json"))]


def frozen(state_dir: Path) -> dict[str, list[str]]:
    """region -> namespace/name of the Rollouts every freeze holds (what thaw will resume)."""
    out: dict[str, set[str]] = {}
    for rec in records(state_dir):
        for r, refs in rec.held.items():
            out.setdefault(r, set()).update(refs)
    return {r: sorted(refs) for r, refs in out.items()}


def _write(state_dir: Path, held: dict[str, list[str]], owner_pid: int | None, platform: str) -> None:
    path = _freeze_path(state_dir, owner_pid)
    if not any(held.values()):
        path.unlink(missing_ok=True)
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps({"frozen": held, "owner_pid": owner_pid, "platform": platform}, indent=2) + "\n")
    os.replace(tmp, path)


def freeze(
    platform: Platform, state_dir: Path, namespace: str | None = None, owner_pid: int | None = None
) -> dict[str, list[str]]:
    """The deploy freeze: pause every Rollout in flight in every region, and write down which
    (one record per owner). What this call paused, region -> namespace/name."""
    path = _freeze_path(state_dir, owner_pid)
    held = _read(path).held if path.exists() else {}
    paused: dict[str, list[str]] = {}
    with _kubes(platform, None) as kubes:
        for r, kube in kubes.items():
            got = ro.freeze(kube, namespace)
            if got:
                paused[r] = got
            held[r] = sorted(set(held.get(r, [])) | set(got))
            # Written after each region: a crash midway still leaves a record of what was paused.
            _write(state_dir, held, owner_pid, platform.name)
    return paused


def freeze_lines(paused: dict[str, list[str]]) -> list[str]:
    return [f"{r}: paused {ref} (in flight)" for r, refs in paused.items() for ref in refs]


def _exists(kube: Kube, ref: str) -> bool:
    namespace, name = ref.split("/", 1)
    return ro.rollout(kube, name, namespace) is not None


def thaw(platform: Platform, state_dir: Path, which: Callable[[FreezeRecord], bool] = lambda _: True) -> list[str]:
    """Lift the freezes which() picks (all by default): resume exactly what they paused (a step's
    own pause stays), and delete their records."""
    picked = [rec for rec in records(state_dir) if which(rec)]
    out: list[str] = []
    # Asked even with nothing to thaw: a platform without Kubernetes says so (exit 2), not "nothing".
    with _kubes(platform, None) as kubes:
        for rec in picked:
            for r, refs in rec.held.items():
                kube = kubes.get(r)
                if kube is None:
                    out.append(f"{r}: no such region in the {platform.name} fleet, {', '.join(refs)} left as they are")
                    continue
                present = [ref for ref in refs if _exists(kube, ref)]
                ro.thaw(kube, present)
                out += [f"{r}: resumed {ref}" for ref in present]
                out += [f"{r}: {ref} is gone, nothing to resume" for ref in sorted(set(refs) - set(present))]
            rec.path.unlink(missing_ok=True)
    return out
