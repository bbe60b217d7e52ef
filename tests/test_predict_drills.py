"""Issue 19's proof: for every mesh profile and every fault kind in the catalogue, a real drill on
a real sandbox fleet (real Envoys, real replicas, the fault really injected) checks that what it
measured falls inside what the manifests predicted. Where it does not, the model is fixed, not
the bound widened.

The whole matrix is `make prove` (36 drills, about 15 minutes on two cores). `make test` runs the
profile x kind pairs that decide the most (the Istio ejection trap, its tuned fix, Cilium's
readiness bound, the front door's health checks); the drills of tests/test_faults.py and
tests/test_drill.py judge their own predictions as well."""

from __future__ import annotations

import json
import math
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from failover_drill.config.manifests import load_policy
from failover_drill.faults.catalogue import resolve
from failover_drill.faults.model import KIND_MODELS, parse_fault
from failover_drill.predict import Context, predict
from tests.conftest import FAST, MANIFESTS_DIR, Fleet, _fleet, run_cli, topology

PROFILES = ("istio", "istio-tuned", "cilium", "cilium-tuned")
# The pairs `make test` runs; `make prove` runs all of them.
DECIDING = {
    ("istio", "zone-loss"),
    ("istio-tuned", "zone-loss"),
    ("cilium-tuned", "zone-loss"),
    ("cilium", "region-loss"),
    ("istio-tuned", "partition"),
}


def _cases() -> Iterator[Any]:
    for profile in PROFILES:
        for kind in KIND_MODELS:
            marks = [] if (profile, kind) in DECIDING else [pytest.mark.prove]
            yield pytest.param(profile, kind, marks=marks, id=f"{profile}-{kind}")


@pytest.fixture(scope="module")
def fleets(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Fleet]]:
    """One fleet per profile, brought up when a case first needs it, all taken down at the end."""
    stops: list[Iterator[Fleet]] = []

    class Lazy(dict[str, Fleet]):
        def __missing__(self, profile: str) -> Fleet:
            gen = _fleet(tmp_path_factory, profile)
            stops.append(gen)
            self[profile] = next(gen)
            return self[profile]

    lazy = Lazy()
    try:
        yield lazy
    finally:
        for gen in stops:
            next(gen, None)


def _fault_s(pred: dict[str, Any]) -> float:
    """Long enough to see the predicted recovery held for the stability window, and no longer."""
    if pred["ttr_s"] is None:
        return 6.0
    return float(max(6, math.ceil(pred["ttr_s"][1] + 2 + 2)))


@pytest.mark.slow
@pytest.mark.parametrize(("profile", "kind"), list(_cases()))
def test_the_drill_measures_what_the_manifests_predict(
    fleets: dict[str, Fleet], tmp_path: Path, profile: str, kind: str
) -> None:
    topo = topology(profile)
    ctx = Context(policy=load_policy(MANIFESTS_DIR, profile), topo=topo, users="us-east1", platform="sandbox")
    expected = predict(resolve(parse_fault({"kind": kind}), topo, "us-east1"), ctx).to_json()
    fleet = fleets[profile]
    fleet.platform.wait_steady("us-east1")
    runs = tmp_path / "runs"
    out = run_cli(
        "drill", *FAST, "--mesh", profile, "--region", "us-east1", "--fault", kind, "--set", f"phases.fault_s={_fault_s(expected)}",
        state=fleet.state, runs=runs, timeout=300,
    )  # fmt: skip
    assert out.returncode in (0, 1), out.stdout + out.stderr
    r = json.loads((runs / "latest" / "result.json").read_text())
    pred = r["prediction"]
    assert pred is not None and pred["faults"][0]["expect"] == expected["expect"], pred
    check = pred["check"]
    assert check["verdict"] == "confirmed", (check, r["failover"], pred["faults"][0]["reasoning"])
    assert f"prediction: confirmed: {check['detail']}" in out.stdout
