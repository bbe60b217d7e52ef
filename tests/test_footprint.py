"""A topology beyond the machine is refused or warned with the numbers, before anything starts."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from failover_drill.config.topology import load_topology
from failover_drill.errors import ConfigError
from failover_drill.platforms.sandbox.footprint import check_fits, footprint
from tests.conftest import ROOT, processes_under, run_cli


def big_topology(tmp_path: Path, regions: int, zones: int, replicas: int) -> Path:
    data = yaml.safe_load((ROOT / "clusters" / "topology.yaml").read_text())
    names = [f"r{i}" for i in range(regions)]
    data["regions"] = [{"name": n, "zones": [chr(ord("a") + z) for z in range(zones)]} for n in names]
    data["replicas_per_zone"] = replicas
    data.pop("latency_ms", None)
    data["manifests"] = str(ROOT / "clusters" / "manifests" / "payment-gateway")
    path = tmp_path / "big.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def test_480_replicas_on_this_machine_are_refused_with_the_numbers(tmp_path: Path) -> None:
    topo = load_topology(big_topology(tmp_path, 8, 6, 10))
    fp = footprint(topo)
    assert fp.processes == 480 + 9 + 8
    with pytest.raises(ConfigError, match=r"needs 497 processes and about 19\.\d GiB") as err:
        check_fits(topo, cores=2, free_mib=16_000)
    assert "replicas_per_zone" in (err.value.hint or "")


def test_a_crowded_fleet_is_warned_about_the_stopwatch(tmp_path: Path) -> None:
    topo = load_topology(big_topology(tmp_path, 3, 3, 5))
    warning = check_fits(topo, cores=2, free_mib=16_000)
    assert warning is not None and "52 fleet processes on 2 cores" in warning and "inconclusive" in warning
    assert check_fits(load_topology(ROOT / "clusters" / "topology.yaml"), cores=2, free_mib=16_000) is None


def test_up_refuses_a_fleet_that_cannot_fit_before_starting_anything(tmp_path: Path) -> None:
    state = tmp_path / "state"
    out = run_cli("up", "--topology", str(big_topology(tmp_path, 8, 6, 10)), state=state)
    assert out.returncode == 2, out.stdout + out.stderr
    assert "needs 497 processes" in out.stderr and "Traceback" not in out.stderr
    assert processes_under(state) == []
