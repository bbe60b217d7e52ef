"""Topology, scenario and manifest loading: valid input loads, bad input names file, line and field."""

from __future__ import annotations

from pathlib import Path

import pytest

from failover_drill.config.manifests import load_policy
from failover_drill.config.scenario import load_scenario
from failover_drill.config.topology import load_topology
from failover_drill.errors import ConfigError
from tests.conftest import ROOT, TOPOLOGY

MANIFESTS = ROOT / "clusters" / "manifests" / "payment-gateway"


def test_default_topology_loads() -> None:
    topo = load_topology(TOPOLOGY)
    assert topo.region_names == ["us-east1", "eu-west1", "asia-southeast1"]
    assert len(topo.all_zones()) == 9
    assert topo.nearest("us-east1") == ["us-east1", "eu-west1", "asia-southeast1"]
    assert topo.nearest("asia-southeast1") == ["asia-southeast1", "eu-west1", "us-east1"]
    assert topo.rtt_ms("eu-west1", "us-east1") == 90


def test_malformed_yaml_names_file_and_line(tmp_path: Path) -> None:
    bad = tmp_path / "topo.yaml"
    bad.write_text("regions:\n  - name: us-east1\n    zones: [a, b\n")
    with pytest.raises(ConfigError) as e:
        load_topology(bad)
    assert str(e.value).startswith(f"{bad}:4: not valid YAML")
    assert e.value.exit_code == 2


def test_bad_field_names_field_and_line(tmp_path: Path) -> None:
    bad = tmp_path / "topo.yaml"
    bad.write_text(
        "regions:\n  - name: us-east1\n  - name: eu-west1\nreplicas_per_zone: 0\nmanifests: " + str(MANIFESTS) + "\n"
    )
    with pytest.raises(ConfigError) as e:
        load_topology(bad)
    msg = str(e.value)
    assert "replicas_per_zone" in msg and f"{bad}:4" in msg


def test_latency_for_unknown_region_is_refused(tmp_path: Path) -> None:
    bad = tmp_path / "topo.yaml"
    bad.write_text(f"regions:\n  - name: a1\nlatency_ms:\n  a1:\n    zz: 5\nmanifests: {MANIFESTS}\n")
    with pytest.raises(ConfigError, match="unknown region 'zz'"):
        load_topology(bad)


def test_unknown_mesh_profile() -> None:
    with pytest.raises(ConfigError, match="unknown mesh profile 'linkerd'"):
        load_topology(TOPOLOGY, mesh="linkerd")


def test_slo_outside_range_refused(tmp_path: Path) -> None:
    f = tmp_path / "s.yaml"
    f.write_text("name: x\nslo:\n  target_pct: 100\n")
    with pytest.raises(ConfigError) as e:
        load_scenario(f)
    assert "between 0 and 100" in str(e.value) and "slo.target_pct" in str(e.value) and f"{f}:3" in str(e.value)


def test_istio_as_shipped_keeps_istio_defaults() -> None:
    p = load_policy(MANIFESTS, "istio")
    assert p.mesh == "istio"
    assert p.outlier is not None and p.outlier.max_ejection_pct == 10 and p.outlier.consecutive_5xx == 5
    assert p.outlier.interval_s == 10 and p.outlier.base_ejection_s == 30
    assert p.retry is not None and p.retry.attempts == 2 and not p.retry.remote_localities
    assert p.locality_enabled
    assert p.readiness.period_s == 5 and p.readiness.failure_threshold == 3
    assert p.front_door.interval_s == 2 and p.front_door.unhealthy_threshold == 2


def test_istio_tuned_overlay_merges() -> None:
    p = load_policy(MANIFESTS, "istio-tuned")
    assert p.outlier is not None and p.outlier.max_ejection_pct == 100 and p.outlier.consecutive_gateway == 1
    assert p.retry is not None and p.retry.remote_localities and p.retry.per_try_timeout_s == 0.3
    assert p.route_timeout_s == 2


def test_cilium_profiles_read_annotations_and_readiness() -> None:
    p = load_policy(MANIFESTS, "cilium")
    assert p.mesh == "cilium" and p.cilium_global and p.cilium_affinity == "local" and p.outlier is None
    tuned = load_policy(MANIFESTS, "cilium-tuned")
    # The overlay changes only the probe timing; the container's other fields stay from base.
    assert tuned.readiness.period_s == 1 and tuned.readiness.failure_threshold == 2
    assert tuned.readiness.path == "/healthz"


def test_manifest_without_readiness_probe_is_refused(tmp_path: Path) -> None:
    (tmp_path / "base").mkdir()
    (tmp_path / "base" / "d.yaml").write_text(
        "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: x}\n"
        "spec:\n  template:\n    spec:\n      containers: [{name: x, image: y}]\n"
    )
    with pytest.raises(ConfigError, match="no readinessProbe"):
        load_policy(tmp_path, "istio")


def test_a_topology_copied_elsewhere_still_finds_the_manifests(tmp_path: Path) -> None:
    """Issue 15 point 15: a copy of clusters/topology.yaml outside the checkout failed to load."""
    copy = tmp_path / "my-topology.yaml"
    copy.write_text(TOPOLOGY.read_text())
    topo = load_topology(copy)
    assert topo.manifests_dir() == MANIFESTS.resolve()
    (tmp_path / "manifests" / "payment-gateway" / "base").mkdir(parents=True)  # a folder of its own wins
    assert load_topology(copy).manifests_dir() == (tmp_path / "manifests" / "payment-gateway").resolve()


def test_manifests_found_nowhere_are_named_with_the_way_out(tmp_path: Path) -> None:
    copy = tmp_path / "my-topology.yaml"
    copy.write_text(TOPOLOGY.read_text().replace("manifests: manifests/payment-gateway", "manifests: nowhere/pg"))
    with pytest.raises(ConfigError) as e:
        load_topology(copy)
    assert e.value.field == "manifests" and "relative to the topology file" in (e.value.hint or "")
