"""AnalysisTemplates are checked against what the drill's SLI endpoint serves before a platform
installs them (config/analysis_templates.py): a template that asks /analysis for a field it does
not serve, or /metrics for a metric, label or window it does not export, is refused with the file,
line, template, metric and field, exit 2, before `up` or `plan` starts anything. (That the endpoint
serves exactly config/sli_contract.py is tests/test_live_sli.py's, through a real HTTP client.)"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import yaml

from failover_drill.config.analysis_templates import load_rollout_manifests, rollouts_dir
from failover_drill.config.topology import load_topology
from failover_drill.errors import ConfigError
from failover_drill.platforms.kwok.netns import can_create
from failover_drill.rollouts import rollout_object
from tests.conftest import ROOT, processes_under, run_cli
from tests.test_manifests import needs_crds, validate_object

SHIPPED = ROOT / "clusters" / "manifests"


def copied_manifests(tmp_path: Path, old: str, new: str) -> tuple[Path, Path]:
    """The shipped manifests copied, one string of analysistemplates.yaml replaced; a topology
    that points at the copy. (template file, topology)"""
    shutil.copytree(SHIPPED, tmp_path / "manifests")
    f = tmp_path / "manifests" / "rollouts" / "analysistemplates.yaml"
    text = f.read_text()
    assert old in text
    f.write_text(text.replace(old, new, 1))
    data = yaml.safe_load((ROOT / "clusters" / "topology.yaml").read_text())
    data["manifests"] = str(tmp_path / "manifests" / "payment-gateway")
    topo = tmp_path / "topology.yaml"
    topo.write_text(yaml.safe_dump(data))
    return f, topo


def line_of(path: Path, text: str) -> int:
    return next(i for i, line in enumerate(path.read_text().splitlines(), 1) if text in line)


def test_the_shipped_templates_ask_only_for_what_the_endpoint_serves() -> None:
    got = load_rollout_manifests(rollouts_dir(load_topology(ROOT / "clusters" / "topology.yaml")))
    assert sorted(t["metadata"]["name"] for t in got.templates()) == [
        "payment-gateway-canary-prometheus",
        "payment-gateway-canary-web",
    ]
    assert {o["kind"] for o in got.objects} == {"AnalysisTemplate", "Rollout", "Service", "VirtualService"}


@needs_crds
def test_the_rollout_routes_by_weight_on_istio_only() -> None:
    """On Istio the Rollout names the repo's VirtualService route and its two Services, and those
    name each other as Argo Rollouts requires (the route's two hosts are the Rollout's stable and
    canary Services); on Cilium, which offers Argo Rollouts no traffic router, the tool drops all
    three and applies none of them. Every object fits the upstream schemas."""
    got = load_rollout_manifests(rollouts_dir(load_topology(ROOT / "clusters" / "topology.yaml")))
    istio = rollout_object(got, "us-east1", "http://127.0.0.1:9", mesh="istio")
    cilium = rollout_object(got, "us-east1", "http://127.0.0.1:9", mesh="cilium")
    canary = istio["spec"]["strategy"]["canary"]
    routing = got.routing("istio")
    vs = next(o for o in routing if o["kind"] == "VirtualService")
    services = {o["metadata"]["name"] for o in routing if o["kind"] == "Service"}
    assert services == {canary["canaryService"], canary["stableService"]}
    assert canary["trafficRouting"]["istio"]["virtualService"]["name"] == vs["metadata"]["name"]
    route = next(
        r for r in vs["spec"]["http"] if r["name"] in canary["trafficRouting"]["istio"]["virtualService"]["routes"]
    )
    assert {d["destination"]["host"] for d in route["route"]} == services
    assert got.routing("cilium") == [] and got.routing("cilium-tuned") == []
    assert not {"trafficRouting", "canaryService", "stableService"} & set(cilium["spec"]["strategy"]["canary"])
    assert cilium["spec"]["strategy"]["canary"]["steps"] == canary["steps"]
    for obj in [*routing, istio, cilium]:
        validate_object(obj)


@pytest.mark.parametrize(
    ("old", "new", "reason", "field"),
    [
        (
            'jsonPath: "{$.success_ratio}"',
            'jsonPath: "{$.succes_ratio}"',
            "metric canary-success-ratio: jsonPath '{$.succes_ratio}' reads 'succes_ratio', "
            "which the drill's /analysis does not serve",
            "spec.metrics[0].provider.web.jsonPath",
        ),
        (
            'query: failover_drill_success_ratio{region="{{args.region}}",version="{{args.version}}",window="1m"}',
            'query: failover_drill_sucess_ratio{region="{{args.region}}",version="{{args.version}}",window="1m"}',
            "metric canary-success-ratio: the query asks for failover_drill_sucess_ratio, "
            "which the drill's /metrics does not export",
            "spec.metrics[0].provider.prometheus.query",
        ),
        (
            'burn_rate{region="{{args.region}}",version="{{args.version}}",window="5m"}',
            'burn_rate{region="{{args.region}}",track="{{args.version}}",window="5m"}',
            "metric canary-burn-rate: failover_drill_burn_rate has no label 'track'",
            "spec.metrics[1].provider.prometheus.query",
        ),
        (
            'burn_rate{region="{{args.region}}",version="{{args.version}}",window="5m"}',
            'burn_rate{region="{{args.region}}",version="{{args.version}}",window="2m"}',
            "failover_drill_burn_rate is exported for windows 1m, 5m, 30m, 1h, 6h, not '2m'",
            "spec.metrics[1].provider.prometheus.query",
        ),
    ],
)
def test_a_template_asking_for_what_is_not_served_is_named(
    tmp_path: Path, old: str, new: str, reason: str, field: str
) -> None:
    f, topo = copied_manifests(tmp_path, old, new)
    with pytest.raises(ConfigError) as err:
        load_rollout_manifests(rollouts_dir(load_topology(topo)))
    e = err.value
    assert e.source == str(f) and e.field == field and reason in e.reason, str(e)
    assert e.line == line_of(f, new.split(": ", 1)[-1][:30])
    assert e.hint  # what the endpoint does serve


def test_plan_on_kind_refuses_the_template_before_any_command(tmp_path: Path) -> None:
    f, topo = copied_manifests(tmp_path, 'jsonPath: "{$.success_ratio}"', 'jsonPath: "{$.ratio}"')
    out = run_cli("plan", "--platform", "kind", "--topology", str(topo), "--region", "us-east1", state=tmp_path / "s")
    assert out.returncode == 2, out.stdout + out.stderr
    assert str(f) in out.stderr and "spec.metrics[0].provider.web.jsonPath" in out.stderr, out.stderr
    assert "Traceback" not in out.stderr and "kind create cluster" not in out.stdout


@pytest.mark.skipif(can_create() is not None, reason=f"the kwok platform: {can_create()}")
def test_up_on_kwok_refuses_the_template_before_anything_starts(tmp_path: Path) -> None:
    """Refused before the toolchain is asked for a binary: no build, no process, no namespace."""
    f, topo = copied_manifests(tmp_path, "failover_drill_burn_rate{", "failover_drill_burnrate{")
    state = tmp_path / "s"
    out = run_cli("up", "--platform", "kwok", "--topology", str(topo), state=state, timeout=60)
    assert out.returncode == 2, out.stdout + out.stderr
    assert str(f) in out.stderr and "failover_drill_burnrate" in out.stderr, out.stderr
    assert "checking the Kubernetes binaries" not in out.stdout + out.stderr
    assert processes_under(state) == []
    assert not (state / "kwok" / "fleet.json").exists()


@needs_crds
def test_a_release_judged_through_prometheus_names_the_prometheus_template() -> None:
    """`rollout.analysis: prometheus`: each analysis step of the released Rollout names the repo's
    prometheus template with Prometheus' address, the region and the version to judge, all the
    arguments that template declares; the object fits the upstream Rollout schema."""
    got = load_rollout_manifests(rollouts_dir(load_topology(ROOT / "clusters" / "topology.yaml")))
    obj = rollout_object(got, "eu-west1", "http://h:1", "v2", 10, mesh="istio", prometheus_url="http://h:9090")
    steps = [s["analysis"] for s in obj["spec"]["strategy"]["canary"]["steps"] if "analysis" in s]
    template = next(t for t in got.templates() if t["metadata"]["name"] == "payment-gateway-canary-prometheus")
    assert steps and all(
        a["templates"] == [{"templateName": "payment-gateway-canary-prometheus"}]
        and {x["name"]: x["value"] for x in a["args"]}
        == {"prometheus-url": "http://h:9090", "region": "eu-west1", "version": "v2"}
        for a in steps
    ), steps
    assert {a["name"] for a in template["spec"]["args"]} == {"prometheus-url", "region", "version"}
    validate_object(obj)


def test_a_prometheus_release_without_a_prometheus_template_is_refused(tmp_path: Path) -> None:
    """Manifests of a team's own without a prometheus template: `plan --rollout ... --set
    rollout.analysis=prometheus` names the folder and the way out, exit 2, before anything runs."""
    f, topo = copied_manifests(tmp_path, "prometheus:\n", "web:\n")
    text = f.read_text()
    # Keep the file a valid web template: the two metrics' prometheus fields become web's.
    f.write_text(text.replace("prometheus:\n", "web:\n").replace("address: ", "url: ").replace("query: ", "jsonPath: "))
    out = run_cli(
        "plan", "--platform", "kind", "--topology", str(topo), "--rollout", "bad-canary",
        "--set", "rollout.analysis=prometheus", state=tmp_path / "s",
    )  # fmt: skip
    assert out.returncode == 2, out.stdout + out.stderr
    assert "holds no AnalysisTemplate with a prometheus provider" in out.stderr, out.stderr
    assert "rollout.analysis" in out.stderr and "Traceback" not in out.stderr
