"""Argo Rollouts from the tool's side: the same merge patches the kubectl plugin sends (abort, retry,
pause, resume/promote, full promote), and reads of what the controller decided. The controller
decides; these only ask it, and report what the API server says."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

from failover_drill.platforms.kube.client import Kube

ARGO = "argoproj.io/v1alpha1"
ROLLOUT = "Rollout"
ANALYSIS_RUN = "AnalysisRun"


@dataclass(frozen=True)
class RolloutState:
    name: str
    namespace: str
    phase: str | None  # Healthy, Progressing, Paused, Degraded
    message: str | None
    aborted: bool
    paused: bool  # spec.paused (a manual pause, e.g. the deploy freeze)
    pause_reasons: list[str]  # status.pauseConditions[].reason
    step: int | None  # status.currentStepIndex
    # The controller has seen the latest spec (status.observedGeneration): until then, the
    # status describes the spec before the last change.
    observed: bool = True

    @classmethod
    def of(cls, obj: dict[str, Any]) -> RolloutState:
        st = obj.get("status") or {}
        meta = obj["metadata"]
        return cls(
            name=str(meta["name"]),
            namespace=str(meta.get("namespace") or ""),
            phase=st.get("phase"),
            message=st.get("message"),
            aborted=bool(st.get("abort")),
            paused=bool((obj.get("spec") or {}).get("paused")),
            pause_reasons=[str(c.get("reason")) for c in st.get("pauseConditions") or []],
            step=st.get("currentStepIndex"),
            observed=str(st.get("observedGeneration")) == str(meta.get("generation")),
        )


def rollouts(kube: Kube, namespace: str | None = None) -> list[RolloutState]:
    return [RolloutState.of(o) for o in kube.list_objects(ARGO, ROLLOUT, namespace)]


def rollout(kube: Kube, name: str, namespace: str) -> RolloutState | None:
    obj = kube.get(ARGO, ROLLOUT, name, namespace)
    return None if obj is None else RolloutState.of(obj)


def analysis_runs(kube: Kube, namespace: str) -> list[dict[str, Any]]:
    return kube.list_objects(ARGO, ANALYSIS_RUN, namespace)


@dataclass(frozen=True)
class ControllerEvent:
    """One Event the Argo Rollouts controller recorded about a Rollout or AnalysisRun (a step
    completed, an analysis run failed, an abort, a promotion), as the API server keeps it."""

    wall: float  # the Event's last occurrence (the API server keeps whole seconds)
    reason: str  # RolloutStepCompleted, AnalysisRunFailed, RolloutAborted, RolloutCompleted, ...
    kind: str  # Rollout | AnalysisRun
    name: str
    message: str


def _when(event: dict[str, Any]) -> float | None:
    for key in ("eventTime", "lastTimestamp", "firstTimestamp"):
        raw = event.get(key)
        if raw:
            return dt.datetime.fromisoformat(str(raw).replace("Z", "+00:00")).timestamp()
    return None


def controller_events(kube: Kube, namespace: str, since_wall: float) -> list[ControllerEvent]:
    """What the controller recorded about Rollouts and AnalysisRuns since since_wall, in order.
    An Event's time has whole seconds: one second before since_wall counts as since."""
    out = []
    for e in kube.events(namespace):
        obj = e.get("involvedObject") or {}
        when = _when(e)
        if obj.get("kind") not in (ROLLOUT, ANALYSIS_RUN) or when is None or when < since_wall - 1.0:
            continue
        out.append(
            ControllerEvent(
                when, str(e.get("reason")), str(obj["kind"]), str(obj.get("name")), str(e.get("message") or "")
            )
        )
    return sorted(out, key=lambda c: c.wall)


# -- the kubectl plugin's patches -----------------------------------------------------------------
def abort(kube: Kube, name: str, namespace: str) -> None:
    kube.patch(ARGO, ROLLOUT, name, namespace, {"status": {"abort": True}}, subresource="status")


def retry(kube: Kube, name: str, namespace: str) -> None:
    kube.patch(ARGO, ROLLOUT, name, namespace, {"status": {"abort": False}}, subresource="status")


def pause(kube: Kube, name: str, namespace: str) -> None:
    kube.patch(ARGO, ROLLOUT, name, namespace, {"spec": {"paused": True}})


def resume(kube: Kube, name: str, namespace: str) -> None:
    """`kubectl argo rollouts promote`: unpause, and clear the step's pause (status subresource first)."""
    kube.patch(ARGO, ROLLOUT, name, namespace, {"status": {"pauseConditions": None}}, subresource="status")
    kube.patch(ARGO, ROLLOUT, name, namespace, {"spec": {"paused": False}})


def promote_full(kube: Kube, name: str, namespace: str) -> None:
    kube.patch(ARGO, ROLLOUT, name, namespace, {"status": {"promoteFull": True}}, subresource="status")


def in_flight(state: RolloutState) -> bool:
    """A rollout the deploy freeze should hold: moving, and not already aborted or paused by us."""
    return state.phase in ("Progressing", "Paused") and not state.aborted and not state.paused


def freeze(kube: Kube, namespace: str | None = None) -> list[str]:
    """Pause every rollout in flight (the deploy freeze when the page alert fires); the names paused,
    for thaw() to resume exactly those."""
    out = []
    for r in rollouts(kube, namespace):
        if in_flight(r):
            pause(kube, r.name, r.namespace)
            out.append(f"{r.namespace}/{r.name}")
    return out


def thaw(kube: Kube, frozen: list[str]) -> None:
    """Lift the freeze on what freeze() paused: spec.paused false only (a step's own pause stays)."""
    for ref in frozen:
        namespace, name = ref.split("/", 1)
        kube.patch(ARGO, ROLLOUT, name, namespace, {"spec": {"paused": False}})
