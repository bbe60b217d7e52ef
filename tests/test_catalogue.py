"""Fault specs are checked against the topology before anything is injected."""

from __future__ import annotations

from typing import Any

import pytest

from failover_drill.config.scenario import Scenario, build_scenario
from failover_drill.drill import resolve_faults
from failover_drill.errors import ConfigError
from failover_drill.faults.catalogue import check_schedule, resolve
from failover_drill.faults.model import Fault, parse_fault
from tests.conftest import topology


def F(**fields: Any) -> Fault:
    return parse_fault(fields)


def test_defaults_fill_from_client_region() -> None:
    topo = topology()
    assert resolve(F(kind="region-loss"), topo, "eu-west1").target == "eu-west1"
    assert resolve(F(kind="zone-loss"), topo, "eu-west1").target == "eu-west1-a"
    link = resolve(F(kind="link-latency", delay_ms=50), topo, "us-east1")
    assert (link.source, link.target) == ("*", "us-east1")
    part = resolve(F(kind="partition"), topo, "us-east1")
    assert (part.source, part.target) == ("front-door", "us-east1")


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"fault": "meteor-strike"}, "unknown fault 'meteor-strike'"),
        ({"fault": "region-loss", "target": "mars-1"}, "unknown region 'mars-1'"),
        ({"fault": "zone-loss", "target": "us-east1-q"}, "unknown zone 'us-east1-q'"),
        ({"fault": "region-loss", "region": "mars-1"}, "unknown region 'mars-1'"),
        ({"fault": "region-loss", "mode": "melt"}, "mode"),
        ({"fault": "region-loss", "rate": 0}, "rate_rps"),
        ({"fault": "region-loss", "rate": -5}, "rate_rps"),
    ],
)
def test_bad_input_refused_before_anything_runs(kwargs: dict[str, object], match: str) -> None:
    params = {"region": None, "fault": None, "mode": None, "target": None, "rate": None, **kwargs}
    with pytest.raises(ConfigError, match=match):
        sc = build_scenario(None, **params)  # type: ignore[arg-type]
        resolve_faults(sc, topology())


def test_negative_latency_refused() -> None:
    with pytest.raises(ConfigError, match=r"faults\.0\.delay_ms"):
        build_scenario(
            None, region=None, fault="link-latency", mode=None, target=None, rate=None, fault_params={"delay_ms": -5}
        )
    with pytest.raises(ConfigError, match=r"faults\.0\.delay_ms"):
        build_scenario(
            None, region=None, fault=None, mode=None, target=None, rate=None, overrides={"faults.0.delay_ms": -1}
        )


def test_scenario_defaults_are_valid() -> None:
    assert Scenario().faults[0].kind == "region-loss"


def test_impossible_compound_schedule() -> None:
    faults = [
        F(kind="link-latency", delay_ms=100, at_s=0, duration_s=10),
        F(kind="region-loss", at_s=20, duration_s=10),
    ]
    with pytest.raises(ConfigError, match="runs from 20s to 30s but the fault phase is 25s"):
        check_schedule(faults, 25)
    overlapping = [
        F(kind="region-loss", target="x", at_s=0, duration_s=10),
        F(kind="region-loss", target="x", at_s=5, duration_s=10),
    ]
    with pytest.raises(ConfigError, match="overlaps"):
        check_schedule(overlapping, 25)
    check_schedule(
        [F(kind="link-latency", delay_ms=100, at_s=0, duration_s=10), F(kind="region-loss", at_s=10)],
        25,
    )


def test_jitter_belongs_to_link_latency_only() -> None:
    sc = build_scenario(None, fault="link-latency", fault_params={"delay_ms": 50, "jitter_pct": 10})
    assert sc.faults[0].jitter_pct == 10
    with pytest.raises(ConfigError, match="jitter_pct applies to link-latency only"):
        build_scenario(None, fault="brownout", fault_params={"fail_pct": 5, "jitter_pct": 10})
    with pytest.raises(ConfigError, match="jitter_pct"):
        build_scenario(None, fault="link-latency", fault_params={"delay_ms": 50, "jitter_pct": 150})
