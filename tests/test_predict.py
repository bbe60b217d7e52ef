"""Predict, then prove (issue 19): from the manifests alone, what each fault does to users and
why; traps named with the field and the fix; a check mode for CI pipelines; bad input refused.

The drills that prove the predictions are real ones: tests/test_predict_drills.py runs every
mesh profile against every fault kind, and the drills of tests/test_faults.py and
tests/test_drill.py check their own prediction too."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest
import yaml

from failover_drill.config.manifests import load_policy
from failover_drill.config.scenario import build_scenario
from failover_drill.errors import ConfigError
from failover_drill.faults.catalogue import resolve
from failover_drill.faults.model import parse_fault
from failover_drill.measure.failover import measure
from failover_drill.measure.timeline import Phase, Timeline
from failover_drill.platforms.kind import cluster_config
from failover_drill.predict import Bound, Context, judge, predict
from failover_drill.predict.scenario import context
from failover_drill.predict.timing import kind_node, node_image_version, node_monitor_grace_period_default
from failover_drill.predict.traps import findings
from failover_drill.traffic.samples import Sample
from tests.conftest import MANIFESTS_DIR, run_cli, topology


def _predict(mesh: str, platform: str = "sandbox", **fault: Any) -> Any:
    topo = topology(mesh)
    ctx = Context(policy=load_policy(MANIFESTS_DIR, mesh), topo=topo, users="us-east1", platform=platform)
    return predict(resolve(parse_fault(fault), topo, "us-east1"), ctx)


def _traps(p: Any) -> set[str]:
    return {f.trap for f in p.findings}


def test_istio_as_shipped_zone_loss_is_the_ejection_trap_bounded_by_readiness() -> None:
    p = _predict("istio", kind="zone-loss")
    assert p.fault == "zone-loss us-east1-a" and p.expect == "failover"
    # 3 failed probes 5 s apart after a crash: 10-15 s, the push, and one success-ratio window.
    assert p.ttr_s.to_json() == [10.0, 16.2]
    assert p.error_pct.to_json() == [100.0, 100.0]
    assert p.decided_by.startswith("readiness removal (3 x 5 s probes)")
    assert {"ejection cap", "retries stay in the failing locality", "no per-try timeout"} <= _traps(p)
    chain = "\n".join(p.reasoning)
    assert "at most 0 host(s) may be ejected, the zone has 2" in chain and "10-15 s" in chain
    # A hang waits each probe's 1 s timeout as well.
    frozen = _predict("istio", kind="zone-loss", mode="freeze")
    assert frozen.ttr_s.to_json() == [13.0, 19.2]


def test_istio_tuned_masks_a_zone_loss_with_retries_across_localities() -> None:
    for mode in ("kill", "freeze"):
        p = _predict("istio-tuned", kind="zone-loss", mode=mode)
        assert p.expect == "no-outage" and p.decided_by == "retries across localities", p.reasoning
        assert "ejection cap" not in _traps(p) and "no per-try timeout" not in _traps(p)


def test_cilium_spreads_a_zone_loss_over_the_regions_zones_until_readiness() -> None:
    p = _predict("cilium", kind="zone-loss")
    assert p.expect == "failover" and p.error_pct.lo == pytest.approx(100 / 3)
    assert p.ttr_s.to_json() == [10.0, 16.2]
    tuned = _predict("cilium-tuned", kind="zone-loss")
    assert tuned.ttr_s.to_json() == [1.0, 3.2]  # 2 probes 1 s apart


def test_kwok_zone_loss_is_bounded_by_the_node_monitor_grace_period() -> None:
    p = _predict("cilium", platform="kwok", kind="zone-loss")
    k = topology("cilium").kwok
    assert p.decided_by == "node-monitor-grace-period"
    assert p.ttr_s.lo == k.node_monitor_grace_period_s - k.node_lease_duration_s / 4
    assert p.ttr_s.hi == k.node_monitor_grace_period_s + k.node_monitor_period_s + 2.0 + 1.0


def test_a_fault_reverted_before_its_predicted_failover_is_warned_with_the_room_it_needs() -> None:
    """A kwok zone loss with the default 25 s fault phase: the 50 s grace period (v1.36's default) means the
    drill reverts before Kubernetes notices, and reports "not recovered" for a fleet that does
    recover. The drill says so before it starts, with the fault phase that would see it."""
    from failover_drill.predict.scenario import unseen_failover

    p = _predict("istio", platform="kwok", kind="zone-loss")
    fault = resolve(parse_fault({"kind": "zone-loss"}), topology("istio"), "us-east1")
    default_phase = build_scenario(None).phases.fault_s
    assert p.ttr_s.hi > default_phase  # the premise: the grace period outlasts the default phase
    warning = unseen_failover(p, fault, default_phase)
    assert warning is not None and "zone-loss us-east1-a is predicted to fail over in" in warning, warning
    need = float(warning.rsplit("phases.fault_s=", 1)[1].split()[0])
    assert need >= p.ttr_s.hi + 10
    assert unseen_failover(p, fault, need) is None
    # A fault with its own duration is told to lengthen that, from when it starts.
    timed = resolve(parse_fault({"kind": "zone-loss", "at_s": 5, "duration_s": 20}), topology("istio"), "us-east1")
    told = str(unseen_failover(p, timed, 200.0))
    assert "reverted after 20 s" in told and "duration_s of" in told, told
    # The sandbox's readiness-bound zone loss fits the default phase: no warning.
    assert unseen_failover(_predict("istio", kind="zone-loss"), fault, default_phase) is None
    # Nothing to recover from, nothing to warn about.
    assert unseen_failover(_predict("istio", kind="zone-loss", target="us-east1-b"), fault, 1.0) is None


def test_a_default_fault_phase_is_lengthened_to_see_the_predicted_failover(tmp_path: Path) -> None:
    """`drill --platform kwok --fault zone-loss`, the phases left as they are: the fault phase grows
    to outlast the predicted failover and says so; a phase the user chose, or a sandbox fault that
    fits, is left alone (plan prints what the drill would run, without a fleet)."""
    from failover_drill.predict.scenario import sized_fault_phase

    topo = topology("istio")
    sc = build_scenario(None, fault="zone-loss")
    fault = resolve(parse_fault({"kind": "zone-loss"}), topo, "us-east1")
    ctx = context(sc, topo, "kwok")
    p = predict(fault, ctx)
    longer, said = sized_fault_phase(sc, [fault], ctx)
    assert longer.phases.fault_s >= p.ttr_s.hi + 10 and longer.phases.fault_s > sc.phases.fault_s
    assert said is not None and f"fault phase lengthened to {longer.phases.fault_s:g} s" in said, said
    assert longer.model_copy(update={"phases": sc.phases}) == sc  # nothing else changed
    same, nothing = sized_fault_phase(sc, [fault], context(sc, topo, "sandbox"))
    assert same is sc and nothing is None

    out = run_cli("plan", "--platform", "kwok", "--fault", "zone-loss", state=tmp_path / "state")
    assert out.returncode == 0, out.stdout + out.stderr
    assert f"fault {longer.phases.fault_s:g}s" in out.stdout and "fault phase lengthened" in out.stderr, out
    chosen = run_cli("plan", "--platform", "kwok", "--fault", "zone-loss", "--set", "phases.fault_s=25",
                     state=tmp_path / "state")  # fmt: skip
    assert chosen.returncode == 0 and "fault 25s" in chosen.stdout and "lengthened" not in chosen.stderr, chosen


def test_faults_off_the_users_path_predict_no_outage() -> None:
    assert _predict("istio", kind="zone-loss", target="us-east1-b").expect == "no-outage"  # priority 1
    assert _predict("cilium", kind="zone-loss", target="us-east1-b").expect == "failover"  # shares traffic
    assert _predict("istio", kind="region-loss", target="eu-west1").expect == "no-outage"
    assert _predict("istio", kind="partition", target="eu-west1").expect == "no-outage"
    assert _predict("istio", kind="control-plane-loss").expect == "no-outage"
    region = _predict("istio", kind="region-loss")
    # The front door's BackendConfig: 2 failed checks 2 s apart.
    assert region.expect == "failover" and region.ttr_s.to_json() == [2.0, 5.0]
    assert _predict("istio", kind="blackout").expect == "no-recovery"
    assert _predict("istio", kind="lost-response").expect == "no-recovery"


def _manifests_with(tmp_path: Path, *docs: dict[str, Any]) -> Path:
    """A copy of the shipped manifests with an overlay profile holding the given objects."""
    d = tmp_path / "manifests"
    shutil.copytree(MANIFESTS_DIR, d)
    overlay = d / "profiles" / "istio"
    overlay.mkdir(parents=True, exist_ok=True)
    (overlay / "overlay.yaml").write_text(yaml.safe_dump_all(docs))
    return d


def _vs(retries: dict[str, Any], timeout: str) -> dict[str, Any]:
    return {
        "apiVersion": "networking.istio.io/v1",
        "kind": "VirtualService",
        "metadata": {"name": "payment-gateway", "namespace": "payments"},
        "spec": {
            "hosts": ["payment-gateway.payments.svc.cluster.local"],
            "http": [
                {
                    "route": [{"destination": {"host": "payment-gateway.payments.svc.cluster.local"}}],
                    "timeout": timeout,
                    "retries": retries,
                }
            ],
        },
    }


def test_a_hand_made_trap_is_flagged_per_try_timeout_longer_than_the_route_timeout(tmp_path: Path) -> None:
    d = _manifests_with(tmp_path, _vs({"attempts": 3, "perTryTimeout": "3s", "retryOn": "5xx"}, "2s"))
    found = {f.trap: f for f in findings(load_policy(d, "istio"), topology("istio"), "us-east1")}
    trap = found["per-try timeout not below the route timeout"]
    assert trap.where == "VirtualService.spec.http[0].retries.perTryTimeout"
    assert "3 s >= route timeout 2 s" in trap.detail and "0.67 s" in trap.fix
    # and through the CLI, as a pipeline would run it on its own manifests
    out = run_cli("predict", "--manifests", str(d), "--fault", "zone-loss", state=tmp_path / "state")
    assert out.returncode == 0, out.stdout + out.stderr
    assert "per-try timeout not below the route timeout" in out.stdout


def test_a_circuit_breaker_that_overflows_is_flagged(tmp_path: Path) -> None:
    dr = yaml.safe_load((MANIFESTS_DIR / "base" / "destinationrule.yaml").read_text())
    dr["spec"]["trafficPolicy"]["connectionPool"] = {"http": {"maxRetries": 3, "http1MaxPendingRequests": 1024}}
    d = _manifests_with(tmp_path, dr)
    found = {f.trap: f for f in findings(load_policy(d, "istio"), topology("istio"), "us-east1")}
    assert "http.maxRetries 3" in found["circuit breaker overflows"].detail
    assert "http1MaxPendingRequests" not in found["circuit breaker overflows"].detail


def test_readiness_slower_than_the_recovery_objective_is_a_trap() -> None:
    policy = load_policy(MANIFESTS_DIR, "istio")
    assert "readiness slower than the budget" in {f.trap for f in findings(policy, topology("istio"), "us-east1", 8)}
    assert "readiness slower than the budget" not in {
        f.trap for f in findings(policy, topology("istio"), "us-east1", 30)
    }


def test_check_mode_fails_a_configuration_that_cannot_meet_the_target(tmp_path: Path) -> None:
    shipped = run_cli("predict", "--max-outage", "8s", state=tmp_path / "state")
    assert shipped.returncode == 1, shipped.stdout + shipped.stderr
    assert "check failed: zone-loss us-east1-a can leave users without service for 16.2 s, over 8 s" in shipped.stdout
    # blackout and lost answers leave nothing to fail over to by design: not what the check judges
    assert "check failed: blackout" not in shipped.stdout
    tuned = run_cli("predict", "--mesh", "istio-tuned", "--max-outage", "8s", state=tmp_path / "state")
    assert tuned.returncode == 0, tuned.stdout + tuned.stderr
    assert "check passed: every fault's predicted outage is within 8 s" in tuned.stdout
    as_json = run_cli("predict", "--mesh", "cilium", "--fault", "zone-loss", "--json", state=tmp_path / "state")
    (pred,) = json.loads(as_json.stdout)
    assert pred["expect"] == "failover" and pred["ttr_s"] == [10.0, 16.2] and pred["reasoning"]


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (["--mesh", "linkerd"], "[--mesh]: unknown mesh profile 'linkerd'"),
        (["--max-outage", "soon"], "[--max-outage]: 'soon' is not a duration"),
        (["--manifests", "/nonexistent/manifests"], "--manifests"),
    ],
)
def test_bad_input_names_the_field_and_exits_2(tmp_path: Path, args: list[str], says: str) -> None:
    out = run_cli("predict", *args, state=tmp_path / "state")
    assert out.returncode == 2, out.stdout + out.stderr
    assert says in out.stderr and "Traceback" not in out.stderr
    # an option's mistake is the option's, not a line of the topology it overrides
    assert "topology.yaml" not in out.stderr


def test_manifests_that_do_not_parse_are_named_with_their_line(tmp_path: Path) -> None:
    d = tmp_path / "manifests"
    shutil.copytree(MANIFESTS_DIR, d)
    (d / "base" / "destinationrule.yaml").write_text("apiVersion: networking.istio.io/v1\nspec: [unclosed\n")
    out = run_cli("predict", "--manifests", str(d), state=tmp_path / "state")
    assert out.returncode == 2 and "Traceback" not in out.stderr, out.stderr
    assert f"{d / 'base' / 'destinationrule.yaml'}:3: not valid YAML" in out.stderr
    assert "fix: fix the YAML syntax there" in out.stderr


def _edit(d: Path, rel: str, old: str, new: str) -> int:
    """Replace old with new in d/rel; the 1-based line of the change."""
    f = d / rel
    text = f.read_text()
    assert old in text, (rel, old)
    f.write_text(text.replace(old, new, 1))
    return text[: text.index(old)].count("\n") + 1


# A field that is not a number (or a duration) where the mesh needs one: file, line, field path
# and the fix, exit 2 (they crashed with a traceback and exit 1).
BAD_FIELDS = [
    (
        "istio",
        "base/deployment.yaml",
        "periodSeconds: 5",
        "periodSeconds: 5s",
        "Deployment.spec.template.spec.containers[0].readinessProbe.periodSeconds",
        "'5s' is not a number",
        "periodSeconds: 5",
    ),
    (
        "istio-tuned",
        "profiles/istio-tuned/destinationrule.yaml",
        "maxEjectionPercent: 100",
        "maxEjectionPercent: lots",
        "DestinationRule.spec.trafficPolicy.outlierDetection.maxEjectionPercent",
        "'lots' is not a whole number",
        "from 0 to 100",
    ),
    (
        "istio",
        "base/destinationrule.yaml",
        "consecutive5xxErrors: 5",
        "consecutive5xxErrors: -5",
        "DestinationRule.spec.trafficPolicy.outlierDetection.consecutive5xxErrors",
        "-5 is not a whole number at least 0",
        "consecutive5xxErrors: 5",
    ),
    (
        "istio-tuned",
        "profiles/istio-tuned/virtualservice.yaml",
        "attempts: 2",
        "attempts: many",
        "VirtualService.spec.http[0].retries.attempts",
        "'many' is not a whole number",
        "attempts: 2",
    ),
    (
        "istio-tuned",
        "profiles/istio-tuned/virtualservice.yaml",
        "perTryTimeout: 300ms",
        "perTryTimeout: soon",
        "VirtualService.spec.http[0].retries.perTryTimeout",
        "'soon' is not a duration",
        "10s, 300ms or 1m",
    ),
    (
        "istio-tuned",
        "profiles/istio-tuned/virtualservice.yaml",
        "retryRemoteLocalities: true",
        "retryRemoteLocalities: yes please",
        "VirtualService.spec.http[0].retries.retryRemoteLocalities",
        "'yes please' is not true or false",
        "retryRemoteLocalities: false",
    ),
    (
        "cilium",
        "base/multiclusterservice.yaml",
        "checkIntervalSec: 2",
        "checkIntervalSec: two",
        "BackendConfig.spec.healthCheck.checkIntervalSec",
        "'two' is not a number",
        "checkIntervalSec: 5",
    ),
]


@pytest.mark.parametrize(("mesh", "rel", "old", "new", "field", "says", "fix"), BAD_FIELDS)
def test_a_manifest_field_that_is_not_a_number_is_named_with_file_line_field_and_fix(
    tmp_path: Path, mesh: str, rel: str, old: str, new: str, field: str, says: str, fix: str
) -> None:
    d = tmp_path / "manifests"
    shutil.copytree(MANIFESTS_DIR, d)
    line = _edit(d, rel, old, new)
    with pytest.raises(ConfigError) as e:
        load_policy(d, mesh)
    err = e.value
    assert (err.source, err.line, err.field) == (str(d / rel), line, field)
    assert says in err.reason and fix in (err.hint or "")


def test_bad_manifest_fields_exit_2_with_the_file_line_and_field(tmp_path: Path) -> None:
    d = tmp_path / "manifests"
    shutil.copytree(MANIFESTS_DIR, d)
    line = _edit(d, "base/deployment.yaml", "periodSeconds: 5", "periodSeconds: 5s")
    out = run_cli("predict", "--manifests", str(d), state=tmp_path / "state")
    assert out.returncode == 2 and "Traceback" not in out.stderr, out.stderr
    assert (
        f"{d / 'base' / 'deployment.yaml'}:{line} "
        "[Deployment.spec.template.spec.containers[0].readinessProbe.periodSeconds]: '5s' is not a number"
    ) in out.stderr
    assert "periodSeconds: 5" in out.stderr  # the fix: seconds without a unit
    # A value the overlay sets is blamed on the overlay's file, not on the base it overrides.
    d2 = tmp_path / "tuned"
    shutil.copytree(MANIFESTS_DIR, d2)
    line = _edit(d2, "profiles/istio-tuned/destinationrule.yaml", "interval: 1s", "interval: soon")
    out = run_cli("predict", "--manifests", str(d2), "--mesh", "istio-tuned", state=tmp_path / "state")
    assert out.returncode == 2 and "Traceback" not in out.stderr, out.stderr
    assert (
        f"{d2 / 'profiles' / 'istio-tuned' / 'destinationrule.yaml'}:{line} "
        "[DestinationRule.spec.trafficPolicy.outlierDetection.interval]: 'soon' is not a duration"
    ) in out.stderr


def test_the_verdict_on_a_prediction() -> None:
    p = _predict("istio", kind="zone-loss").to_json()
    assert judge(p, {"ttr_s": 12.0, "outage_s": 12.0, "recovered": True})["verdict"] == "confirmed"
    late = judge(p, {"ttr_s": 20.5, "outage_s": 20.5, "recovered": True})
    assert late["verdict"] == "off" and "4.3 s later than predicted" in late["detail"]
    assert "readiness removal" in late["detail"]
    early = judge(p, {"ttr_s": 2.0, "outage_s": 2.0, "recovered": True})
    assert early["verdict"] == "off" and "sooner than predicted" in early["detail"]
    assert judge(p, {"ttr_s": None, "outage_s": 30, "recovered": False})["verdict"] == "off"
    assert judge(p, {"ttr_s": None, "outage_s": 25, "recovered": False, "fault_on_s": 25.0})["verdict"] == "off"
    # Reverted at 8 s, before the predicted 10-16.2 s: no recovery says nothing about the model.
    short = judge(p, {"ttr_s": None, "outage_s": 8, "recovered": False, "fault_on_s": 8.0})
    assert short["verdict"] == "not judged" and "on for 8 s" in short["detail"], short
    assert judge(p, {"ttr_s": 12.0, "recovered": True}, valid=False)["verdict"] == "not judged"
    calm = _predict("istio", kind="control-plane-loss").to_json()
    assert judge(calm, {"ttr_s": 0.0, "outage_s": 0.0, "recovered": True})["verdict"] == "confirmed"
    assert judge(calm, {"ttr_s": 6.0, "outage_s": 6.0, "recovered": True})["verdict"] == "off"


def _tuned_with_timeouts(tmp_path: Path, per_try: str, route: str) -> Path:
    """The shipped manifests with istio-tuned's VirtualService given these timeouts."""
    d = tmp_path / f"manifests-{per_try}-{route}"
    shutil.copytree(MANIFESTS_DIR, d)
    _edit(d, "profiles/istio-tuned/virtualservice.yaml", "perTryTimeout: 300ms", f"perTryTimeout: {per_try}")
    _edit(d, "profiles/istio-tuned/virtualservice.yaml", "timeout: 2s", f"timeout: {route}")
    return d


def _predict_in(d: Path, mesh: str, topo: Any = None, **fault: Any) -> Any:
    topo = topo or topology(mesh)
    ctx = Context(policy=load_policy(d, mesh), topo=topo, users="us-east1", platform="sandbox")
    return predict(resolve(parse_fault(fault), topo, "us-east1"), ctx)


def test_a_per_try_timeout_not_below_the_route_timeout_leaves_a_frozen_zone_failing(tmp_path: Path) -> None:
    """The trap the model flagged and then ignored: with perTryTimeout 3s >= timeout 2s no retry
    is sent in time, so a frozen zone's requests fail until something removes its replicas."""
    d = _tuned_with_timeouts(tmp_path, "3s", "2s")
    p = _predict_in(d, "istio-tuned", kind="zone-loss", mode="freeze")
    assert p.expect == "failover", p.reasoning
    assert "per-try timeout not below the route timeout" in _traps(p)
    # The route's 2 s timeout races the client's 2 s: when the gateway's fires first it ejects (at
    # 2 s); when the client's does, only readiness removes the hung replicas (13-18.2 s).
    assert p.ttr_s.to_json() == [2.0, 19.2] and p.outage_s.to_json() == [2.0, 19.2]
    assert p.error_pct.to_json() == [100.0, 100.0]
    assert "outlier ejection on the gateway's 2 s timeout" in p.decided_by and "readiness removal" in p.decided_by
    assert any("no retry is sent in time" in line for line in p.reasoning)
    # A crash is refused at once: retries still reach priority 1, whatever the timeouts.
    assert _predict_in(d, "istio-tuned", kind="zone-loss", mode="kill").expect == "no-outage"
    # The check mode fails the pipeline: the bound carries the trap, over the 5 s target.
    out = run_cli(
        "predict", "--manifests", str(d), "--mesh", "istio-tuned", "--fault", "zone-loss", "--mode", "freeze",
        "--max-outage", "5s", state=tmp_path / "state",
    )  # fmt: skip
    assert out.returncode == 1, out.stdout + out.stderr
    assert "check failed: zone-loss us-east1-a can leave users without service for 19.2 s, over 5 s" in out.stdout


def test_a_gateway_timeout_under_the_clients_ejects_a_frozen_zone(tmp_path: Path) -> None:
    # A 1 s route timeout fails hung requests before the client's 2 s: Envoy counts each as a
    # gateway error, and one in a row ejects (istio-tuned), so the zone is out after 1 s.
    p = _predict_in(_tuned_with_timeouts(tmp_path, "3s", "1s"), "istio-tuned", kind="zone-loss", mode="freeze")
    assert p.expect == "failover" and p.ttr_s.to_json() == [1.0, 2.0], p.reasoning
    assert p.decided_by.startswith("outlier ejection on the gateway's 1 s timeout")
    # A per-try timeout below the route's, but two hung attempts (1 s each) use the whole 2 s
    # before the retry reaches priority 1: the per-try timeouts eject the zone instead.
    p = _predict_in(_tuned_with_timeouts(tmp_path, "1s", "2s"), "istio-tuned", kind="zone-loss", mode="freeze")
    assert p.expect == "failover" and p.ttr_s.to_json() == [1.0, 2.0], p.reasoning
    assert any("take 2 s before a retry reaches a healthy priority" in line for line in p.reasoning)


def test_a_brownout_that_fails_every_request_is_what_the_mesh_makes_of_it() -> None:
    # Istio as shipped: 503s retried within the zone, no ejection (the cap): the zone's whole
    # share fails for as long as the fault is on.
    p = _predict("istio", kind="brownout", fail_pct=100)
    assert p.expect == "no-recovery" and p.error_pct.to_json() == [100.0, 100.0], p.reasoning
    assert not any("within the SLO" in line for line in p.reasoning)
    # Tuned: the retries leave the failing locality.
    tuned = _predict("istio-tuned", kind="brownout", fail_pct=100)
    assert tuned.expect == "no-outage" and tuned.decided_by == "retries across localities"
    # A whole region: two failing priorities take four attempts, two retries are too few; one 5xx
    # ejects each replica (maxEjectionPercent 100%), a burst of errors, then another region.
    region = _predict("istio-tuned", kind="brownout", fail_pct=100, target="us-east1")
    assert region.expect == "failover" and region.decided_by == "outlier ejection", region.reasoning
    assert region.ttr_s.to_json() == [0.0, 1.0]
    # Cilium: no retries, no ejection, replicas stay ready: a third of the requests fail throughout.
    cilium = _predict("cilium", kind="brownout", fail_pct=100)
    assert cilium.expect == "no-recovery" and cilium.error_pct.lo == pytest.approx(100 / 3)


def test_a_brownout_slower_than_the_timeouts_fails_requests() -> None:
    p = _predict("istio", kind="brownout", delay_ms=5000)
    assert p.expect == "no-recovery" and p.error_pct.to_json() == [100.0, 100.0], p.reasoning
    assert p.decided_by != "latency only"
    assert _predict("cilium", kind="brownout", delay_ms=5000).error_pct.lo == pytest.approx(100 / 3)
    # Tuned: each attempt is cut at 0.3 s and the retry reaches another locality within 2 s.
    tuned = _predict("istio-tuned", kind="brownout", delay_ms=5000)
    assert tuned.expect == "no-outage" and tuned.decided_by == "retries across localities", tuned.reasoning
    # Under every timeout it is latency only, as before.
    assert _predict("istio", kind="brownout", delay_ms=500).decided_by == "latency only"


def _one_region(mesh: str) -> Any:
    topo = topology(mesh)
    return topo.model_copy(update={"regions": topo.regions[:1], "latency_ms": {}})


@pytest.mark.parametrize("kind", ["region-loss", "partition", "cert-expiry"])
def test_a_single_region_has_nowhere_to_fail_over(kind: str) -> None:
    p = _predict_in(MANIFESTS_DIR, "istio", _one_region("istio"), kind=kind)
    assert p.expect == "no-recovery" and p.error_pct.to_json() == [100.0, 100.0], p.reasoning
    assert p.decided_by == "one region: nowhere to fail over"
    assert any("only region" in line for line in p.reasoning)
    assert not any("None" in line for line in p.reasoning)


def test_kind_grace_period_follows_the_pinned_node_image(monkeypatch: pytest.MonkeyPatch) -> None:
    """kube-controller-manager's default node-monitor-grace-period is 40 s up to Kubernetes 1.31
    and 50 s from 1.32 (kubernetes#126287); kind runs the version of its pinned node image."""
    assert node_monitor_grace_period_default((1, 31)) == 40
    assert node_monitor_grace_period_default((1, 32)) == 50
    assert node_monitor_grace_period_default((1, 33)) == 50
    assert node_image_version("kindest/node:v1.31.2") == (1, 31)
    assert node_image_version("kindest/node:v1.32.0@sha256:0123abcd") == (1, 32)
    pinned = node_image_version(cluster_config.KIND_NODE_IMAGE)
    grace = node_monitor_grace_period_default(pinned)
    assert kind_node().node_monitor_grace_period_s == grace
    p = _predict("cilium", platform="kind", kind="zone-loss")
    assert p.decided_by == "node-monitor-grace-period"
    # lease renewed every 10 s; checked every 5 s; 2 s until the gateways hear; one window
    assert p.ttr_s.to_json() == [grace - 10, grace + 5 + 2 + 1]
    # The pin is read when predicting: another node image, another default.
    other = "kindest/node:v1.30.0" if pinned >= (1, 32) else "kindest/node:v1.32.0"
    monkeypatch.setattr(cluster_config, "KIND_NODE_IMAGE", other)
    assert kind_node().node_monitor_grace_period_s == node_monitor_grace_period_default(node_image_version(other))
    assert kind_node().node_monitor_grace_period_s != grace


def test_affinity_local_with_one_region_is_a_trap() -> None:
    policy = load_policy(MANIFESTS_DIR, "cilium")
    assert "affinity local with one region" in {f.trap for f in findings(policy, _one_region("cilium"), "us-east1")}
    assert "affinity local with one region" not in {f.trap for f in findings(policy, topology("cilium"), "us-east1")}


def test_no_outlier_detection_is_a_trap_and_turns_locality_off(tmp_path: Path) -> None:
    dr = yaml.safe_load((MANIFESTS_DIR / "base" / "destinationrule.yaml").read_text())
    del dr["spec"]["trafficPolicy"]["outlierDetection"]
    d = tmp_path / "manifests"
    shutil.copytree(MANIFESTS_DIR, d)
    (d / "base" / "destinationrule.yaml").write_text(yaml.safe_dump(dr))
    policy = load_policy(d, "istio")
    found = {f.trap: f for f in findings(policy, topology("istio"), "us-east1")}
    assert found["no outlier detection"].where == "DestinationRule.spec.trafficPolicy.outlierDetection"
    assert "ejection cap" not in found
    # istiod turns locality failover off: every zone of the region shares a lost zone's loss
    p = _predict_in(d, "istio", kind="zone-loss")
    assert p.expect == "failover" and p.error_pct.lo == pytest.approx(100 / 3)


def test_a_service_that_is_not_global_is_a_trap(tmp_path: Path) -> None:
    d = tmp_path / "manifests"
    shutil.copytree(MANIFESTS_DIR, d)
    _edit(d, "base/service.yaml", 'service.cilium.io/global: "true"', 'service.cilium.io/global: "false"')
    found = {f.trap: f for f in findings(load_policy(d, "cilium"), topology("cilium"), "us-east1")}
    assert found["not a global service"].where == "Service.metadata.annotations"
    assert "affinity local with one region" not in found


def test_readiness_is_judged_against_the_check_modes_target(tmp_path: Path) -> None:
    """With --fault the scenario has no recovery objective: the trap used to vanish exactly when
    a pipeline asked for a target."""
    sc = build_scenario(None, region="us-east1", fault="zone-loss")
    assert context(sc, topology("istio"), "sandbox", max_outage_s=8).rto_s == 8
    out = run_cli("predict", "--fault", "zone-loss", "--max-outage", "8s", state=tmp_path / "state")
    assert out.returncode == 1, out.stdout + out.stderr
    assert "readiness slower than the budget" in out.stdout and "over the 8 s budget" in out.stdout
    relaxed = run_cli("predict", "--fault", "zone-loss", "--max-outage", "30s", state=tmp_path / "state")
    assert relaxed.returncode == 0 and "readiness slower than the budget" not in relaxed.stdout


def test_the_verdict_weighs_the_outage_and_the_error_share() -> None:
    p = _predict("istio", kind="zone-loss").to_json()  # 10-16.2 s, 100% of requests fail
    seen = {"ttr_s": 12.0, "outage_s": 12.0, "recovered": True, "error_pct": [99.4, 100.0], "error_requests": 2400}
    assert judge(p, seen)["verdict"] == "confirmed"
    # The failover came in time, but only a third of the requests failed: they were not all on
    # the lost zone (locality did not hold)
    spread = judge(p, {**seen, "error_pct": [33.0, 33.6]})
    assert spread["verdict"] == "off" and "fewer than the predicted 100%" in spread["detail"]
    assert "share of requests on the failing path" in spread["detail"]
    # TTR in the bound, yet errors stopped after 4 s: something ended the outage before readiness
    short = judge(p, {**seen, "outage_s": 4.0})
    assert short["verdict"] == "off" and "shorter than the predicted 10-16.2 s" in short["detail"]
    assert "readiness removal" in short["detail"]
    # Cilium: a third, give or take sampling; all of them would be another model
    c = _predict("cilium", kind="zone-loss").to_json()
    third = {**seen, "error_pct": [31.5, 34.9]}
    assert judge(c, third)["verdict"] == "confirmed"
    assert judge(c, {**seen, "error_pct": [97.0, 100.0]})["verdict"] == "off"
    # no share measured (or a prediction without one): judged as before
    assert judge(p, {"ttr_s": 12.0, "outage_s": 12.0, "recovered": True})["verdict"] == "confirmed"
    # a no-recovery's outage runs as long as the fault
    lost = _predict("istio", kind="brownout", fail_pct=100)
    lost.outage_s = Bound(20.0, 20.0)
    during = {"ttr_s": None, "outage_s": 19.8, "recovered": False, "error_pct": [99.8, 100.0], "error_requests": 4000}
    assert judge(lost.to_json(), during)["verdict"] == "confirmed"
    assert judge(lost.to_json(), {**during, "outage_s": 6.0})["verdict"] == "off"


def test_the_error_share_of_an_outage_is_measured_on_its_own_requests() -> None:
    """A third of the requests fail from 10 s to 13.5 s (one zone of three), none elsewhere: the
    share is taken over the outage, not over the fault phase or the run."""
    tl = Timeline()
    tl.set_phases([Phase("baseline", 0, 10), Phase("fault", 10, 20), Phase("recovery", 20, 30)])
    for i in range(30 * 200):
        t = i / 200
        bad = 10.0 <= t < 13.5 and i % 3 == 0
        tl.add(Sample(i, t, 1.0 if bad else 5.0, 0.1, 503 if bad else 201, "upstream_connect" if bad else "ok"))
    tl.seal_all()
    fo = measure(
        tl, t0=10.0, t_revert=20.0, t_end=30.0, slo=0.999, window_s=1.0, stability_s=2.0,
        targets={"us-east1-a"}, level="zone", baseline_share=0.33, rate_rps=200.0,
    )  # fmt: skip
    assert fo.outage_error_pct is not None and fo.outage_requests == 700
    lo, hi = fo.outage_error_pct
    # 233 of 700: lo counts the edge buckets' successes, hi leaves them out
    assert lo == pytest.approx(100 / 3, abs=0.1) and 100 / 3 < hi < 35


def test_an_outage_that_lasts_the_whole_fault_counts_each_bucket_once() -> None:
    """A blackout: every request fails from the inject (3.005 s) to the revert (9.002 s), both
    mid-bucket as on a real fleet. The bucket that holds the revert belongs to the fault phase and
    the recovery phase alike; counted twice, its successes after the revert sat inside the span and
    a blackout measured 97-98% failed where every request sent during it failed."""
    tl = Timeline()
    tl.set_phases([Phase("baseline", 1, 3), Phase("fault", 3, 9), Phase("recovery", 9, 15)])
    for i in range(15 * 200):
        t = i / 200
        bad = 3.005 <= t <= 9.0
        tl.add(Sample(i, t, 1.0 if bad else 2.0, 0.1, 503 if bad else 201, "injected_abort" if bad else "ok"))
    tl.seal_all()
    fo = measure(
        tl, t0=3.0048, t_revert=9.0023, t_end=15.0, slo=0.999, window_s=1.0, stability_s=2.0,
        targets=set(), level="region", baseline_share=0.0, rate_rps=200.0,
    )  # fmt: skip
    assert fo.recovered is False and fo.outage_error_pct is not None
    lo, hi = fo.outage_error_pct
    assert fo.outage_requests == 61 * 20  # buckets 3.0 .. 9.0, once each
    assert hi == 100.0 and lo == pytest.approx(100 * 1200 / 1220, abs=0.01)
