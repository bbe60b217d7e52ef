"""The deploy freeze's choices (platforms/kube/rollouts.py) on Rollout objects as the API server
returns them; the patches themselves are exercised against the real controller in
test_kwok_rollouts.py."""

from __future__ import annotations

from typing import Any

from failover_drill.platforms.kube.rollouts import RolloutState, in_flight


def obj(phase: str | None, *, abort: bool = False, paused: bool = False, reasons: tuple[str, ...] = ()) -> Any:
    return {
        "metadata": {"name": "payment-gateway", "namespace": "payments"},
        "spec": {"paused": paused},
        "status": {
            "phase": phase,
            "abort": abort,
            "currentStepIndex": 1,
            "pauseConditions": [{"reason": r} for r in reasons],
        },
    }


def test_only_rollouts_in_flight_are_frozen() -> None:
    assert in_flight(RolloutState.of(obj("Progressing")))
    assert in_flight(RolloutState.of(obj("Paused", reasons=("CanaryPauseStep",))))
    assert not in_flight(RolloutState.of(obj("Healthy")))
    assert not in_flight(RolloutState.of(obj("Degraded", abort=True)))
    assert not in_flight(RolloutState.of(obj("Paused", paused=True)))  # already held: thaw is someone else's
    s = RolloutState.of(obj("Paused", reasons=("CanaryPauseStep",)))
    assert (s.name, s.namespace, s.step, s.pause_reasons) == ("payment-gateway", "payments", 1, ["CanaryPauseStep"])
    assert RolloutState.of({"metadata": {"name": "x"}}).phase is None  # no status yet: nothing known


def test_a_damaged_freeze_record_says_what_is_unknown_and_how_to_resume_by_hand(tmp_path: Any) -> None:
    import pytest

    from failover_drill import rollouts
    from failover_drill.errors import PlatformError

    assert rollouts.frozen(tmp_path) == {}
    (tmp_path / rollouts.FREEZE_FILE).write_text('{"frozen": {"us-east1": ["payments/pay')
    with pytest.raises(PlatformError) as got:
        rollouts.frozen(tmp_path)
    assert "damaged" in got.value.message and "rollouts status" in (got.value.hint or "")
    (tmp_path / rollouts.FREEZE_FILE).write_text('{"frozen": {"us-east1": ["payments/payment-gateway"]}}')
    assert rollouts.frozen(tmp_path) == {"us-east1": ["payments/payment-gateway"]}
