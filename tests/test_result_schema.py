"""The JSON Schema of result.json shipped in the package is the one the model generates, and it holds."""

from __future__ import annotations

import copy
import json
from typing import Any

import jsonschema
import pytest

from failover_drill.report.result_model import SCHEMA_PATH, SCHEMA_VERSION, Result, schema_text
from tests.conftest import ROOT

from .schema_check import assert_valid_result, shipped_schema


def test_the_shipped_schema_is_the_generated_one() -> None:
    assert SCHEMA_PATH.read_text(encoding="utf-8") == schema_text(), (
        "result.schema.json is stale: run `python -m failover_drill.report.result_model --write-schema`"
    )
    assert shipped_schema()["properties"]["schema_version"]["const"] == SCHEMA_VERSION


def minimal_result() -> dict[str, Any]:
    failed = {"p50": None, "p99": None, "max": None, "count": 0}
    latency = {"p10": None, "p50": None, "p90": None, "p99": None, "max": None, "count": 0, "failed": failed}
    span = {"start_s": 0.0, "end_s": 1}
    lag = {
        "requests": 0,
        "late": 0,
        "late_share": 0.0,
        "p50_ms": None,
        "p99_ms": None,
        "max_ms": None,
        "cpu_busy_pct": None,
        "cpu_steal_pct": None,
        "own_cpu_pct": None,
    }
    return {
        "schema": 8,
        "schema_version": 8,
        "run_id": "r",
        "scenario": "s",
        "platform": "sandbox",
        "mesh": "istio",
        "client_region": "us-east1",
        "started_at": None,
        "complete": False,
        "fault": {
            "kind": "region-loss",
            "target": "us-east1",
            "mode": None,
            "faults": [{"kind": "region-loss", "target": "us-east1"}],
            "details": [],
            "injected_at_s": 3,
            "reverted_at_s": None,
        },
        "phases": {p: span for p in ("warmup", "baseline", "fault", "recovery")},
        "traffic": {
            "requests": 0,
            "ok": 0,
            "failed": 0,
            "rate_rps": 100,
            "achieved_rps": 0.0,
            "dropped": 0,
            "attempts": 0,
            "raw_failures": 0,
            "errors": {},
            "generator": None,
        },
        "failover": {
            "ttd_s": None,
            "ttr_s": None,
            "shift_s": None,
            "failback_s": None,
            "return_s": None,
            "outage_s": None,
            "recovered": False,
            "failed_back": False,
            "measured_at": "region",
            "targets": ["us-east1"],
            "mesh_detected_s": None,
            "mesh_restored_s": None,
            "node_not_ready_s": None,
            "endpoints_removed_s": None,
        },
        "error_budget": {
            "slo": 99.9,
            "period_days": 30,
            "bad_requests": 0,
            "budget_requests": 0.0,
            "budget_consumed_pct": 0.0,
            "peak_burn_rate": 0.0,
            "burn_rate": {"1m": 0.0, "5m": 0.0, "30m": 0.0, "1h": 0.0, "6h": 0.0},
            "page_alert_fired": False,
            "ticket_alert_fired": False,
            "minutes_to_exhaust_at_peak": None,
        },
        "latency_ms": {p: latency for p in ("baseline", "fault", "recovery")},
        "served_by": {"baseline": {}, "fault": {}, "recovery": {}},
        "served_by_zone": {"baseline": {}, "fault": {}, "recovery": {}},
        "payments": {
            "reconciled": False,
            "acknowledged": None,
            "charged": None,
            "lost": None,
            "duplicated": None,
            "charged_unacknowledged": None,
            "examples": {"lost_keys": [], "duplicated_keys": [], "unacknowledged_keys": []},
        },
        "platform_events": [],
        "verdict": {"passed": False, "inconclusive": False, "reasons": ["the drill did not finish"], "checks": []},
        "measurement": {
            "valid": True,
            "reasons": [],
            "bounds": {"late_ms": 10.0, "max_late_share": 0.1, "max_lag_p99_ms": 100.0},
            "phases": {p: lag for p in ("baseline", "fault", "recovery")},
        },
        "journal": {"samples": 0, "skipped_lines": []},
        "timing": None,
        "prediction": None,
        "rollouts": None,
    }


def test_the_model_round_trips_result_json_exactly() -> None:
    """Keys, their order and ints stay as written (an int figure is not turned into a float)."""
    r = minimal_result()
    assert_valid_result(r)
    dumped = Result.model_validate(r).model_dump(mode="json")
    assert json.dumps(dumped) == json.dumps(r)


@pytest.mark.parametrize(
    ("path", "value"),
    [
        (("failover", "measured_at"), "planet"),
        (("traffic", "requests"), "many"),
        (("error_budget", "burn_rate", "1m"), None),
        (("surprise",), 1),
    ],
)
def test_the_schema_rejects_what_the_contract_does_not_allow(path: tuple[str, ...], value: object) -> None:
    r = copy.deepcopy(minimal_result())
    node: dict[str, Any] = r
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = value
    with pytest.raises(jsonschema.ValidationError):
        assert_valid_result(r)


def test_a_missing_key_is_rejected() -> None:
    r = minimal_result()
    del r["payments"]["lost"]
    with pytest.raises(jsonschema.ValidationError, match="'lost' is a required property"):
        assert_valid_result(r)


def test_every_failover_figure_is_defined_in_the_repositorys_own_docs() -> None:
    """Issue 15 point 14: users do not have DESIGN.md; docs/metrics.md defines what result.json
    reports, and the README and every report.md point there."""
    from failover_drill.report.result_model import FailoverFigures

    docs = (ROOT / "docs" / "metrics.md").read_text()
    timed = [name for name in FailoverFigures.model_fields if name.endswith("_s")]
    assert timed and [n for n in timed if f"`{n}`" not in docs] == []
    assert "docs/metrics.md" in (ROOT / "README.md").read_text()
    assert "DESIGN.md" not in (ROOT / "README.md").read_text()


def test_the_rollouts_section_holds_the_controllers_events_and_the_deploy_freeze() -> None:
    """result.json `rollouts` from the journal's platform events: the controller's own Events and
    the drill's freeze, in time order, held time computed, and shown in report.md."""
    from failover_drill.report import records
    from failover_drill.report.markdown import render_markdown
    from failover_drill.report.result import _rollouts

    pe = records.PlatformEventRecord
    got = _rollouts(
        [
            pe(9.0, "failover-drill", "deploy-thaw", None, None, "us-east1: resumed payments/payment-gateway"),
            pe(2.5, "envoy", "outlier_eject", "us-east1", "us-east1-b", "10.0.0.2"),
            pe(3.0, "argo-rollouts", "RolloutAborted", "us-east1", None, "Rollout payment-gateway: aborted"),
            pe(1.5, "failover-drill", "deploy-freeze", None, None, "page alert: us-east1: paused payments/x"),
        ]
    )
    assert got is not None and got.aborted
    assert [e.reason for e in got.events] == ["deploy-freeze", "RolloutAborted", "deploy-thaw"]
    assert got.freeze is not None and (got.freeze.frozen_at_s, got.freeze.thawed_at_s, got.freeze.held_s) == (
        1.5, 9.0, 7.5,
    )  # fmt: skip
    assert _rollouts([pe(2.5, "envoy", "outlier_eject", "us-east1", None, "")]) is None
    r = minimal_result()
    r["rollouts"] = got.model_dump(mode="json")
    assert_valid_result(r)
    md = render_markdown(r)
    assert (
        "## Rollouts" in md
        and "The page alert froze deploys at 1.5 s, held 7.5 s. A controller aborted a rollout." in md
    )


def test_the_release_section_says_what_the_controllers_did_with_the_scenarios_release() -> None:
    """rollouts.release from the drill's release events: when it started, when each region's was
    aborted or fully out, the expected outcome met or not, in report.md and the verdict's checks."""
    from failover_drill.config.scenario import RELEASES
    from failover_drill.report import records
    from failover_drill.report.markdown import check_rows, render_markdown
    from failover_drill.report.result import _rollouts

    pe = records.PlatformEventRecord
    events = [
        pe(5.0, "failover-drill", "release", None, None, "release canary, failing 60%: us-east1: released"),
        pe(21.0, "argo-rollouts", "RolloutAborted", "us-east1", None, "Rollout aborted"),
        pe(21.7, "failover-drill", "release-aborted", "us-east1", None, "metric failed"),
        pe(40.0, "failover-drill", "release-outcome", "us-east1", None, "aborted: Degraded, step 1"),
        pe(40.0, "failover-drill", "release-outcome", "eu-west1", None, "in flight: Paused, step 1"),
    ]
    bad = _rollouts(events, RELEASES["bad-canary"])
    assert bad is not None and bad.release is not None
    rel = bad.release
    assert (rel.expected, rel.started_at_s, rel.time_to_abort_s) == ("aborted", 5.0, 16.7)
    assert [(x.region, x.outcome, x.aborted_at_s) for x in rel.regions] == [
        ("us-east1", "aborted", 21.7),
        ("eu-west1", "in flight", None),
    ]
    assert not rel.met  # eu-west1's bad canary was still in flight
    healthy = pe(40.0, "failover-drill", "release-outcome", "us-east1", None, "healthy: Healthy")
    good = _rollouts([events[0], healthy], RELEASES["good-canary"])
    assert good is not None and good.release is not None and good.release.met and good.release.expected == "promoted"
    r = minimal_result()
    r["rollouts"] = bad.model_dump(mode="json")
    r["verdict"]["checks"] = [
        {"name": "release", "passed": False, "measured": "us-east1 aborted, eu-west1 in flight", "limit": "aborted",
         "unit": ""},
    ]  # fmt: skip
    assert_valid_result(r)
    md = render_markdown(r)
    assert (
        "Release canary (fails 60%, judged by the web template) expected aborted: us-east1 aborted, "
        "eu-west1 in flight; first abort 16.7 s"
    ) in md
    assert check_rows(r["verdict"]) == [
        ("the release's outcome", "us-east1 aborted, eu-west1 in flight", "aborted", "FAILED")
    ]
    # While a Chaos Toolkit session still runs (no outcome recorded yet): what has been seen so far,
    # every region the release reached included.
    so_far = [pe(5.0, "failover-drill", "release", r, None, "released") for r in ("us-east1", "eu-west1")]
    mid = _rollouts([*so_far, events[2]], RELEASES["bad-canary"])
    assert mid is not None and mid.release is not None
    assert [(x.region, x.outcome) for x in mid.release.regions] == [("us-east1", "aborted"), ("eu-west1", "in flight")]
    assert not mid.release.met
    assert _rollouts([], None) is None
