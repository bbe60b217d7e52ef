"""The repo's Argo Rollouts manifests (clusters/manifests/rollouts/, beside the payment-gateway
manifests), read and checked before a platform installs them.

Argo Rollouts takes any jsonPath and any PromQL: a template that asks the drill's SLI endpoint
for a field or a metric it does not serve is only found out when an AnalysisRun errors in the
middle of a canary, which the controller then aborts for the wrong reason. Here such a template
is refused up front, naming the file, the line, the template, the metric and the field."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from failover_drill.config.sli_contract import ANALYSIS_FIELDS, METRIC_WINDOWS, METRICS
from failover_drill.config.topology import Topology, default_topology_path
from failover_drill.config.yamlio import Loc, load_documents
from failover_drill.errors import ConfigError

ROLLOUTS_DIR = "rollouts"
ANALYSIS_TEMPLATE = "AnalysisTemplate"

# {$.success_ratio}, $.failover.phase, {.burn_rate}: the first field the path reads.
_JSON_FIELD = re.compile(r"^\{?\s*\$?\.?([A-Za-z_][A-Za-z0-9_]*)")
_METRIC = re.compile(r"\b(failover_drill_[a-z0-9_]+)\b(\{[^}]*\})?")
_ARG = re.compile(r"\{\{[^}]*\}\}")
_ARG_VALUE = "__arg__"
_LABEL = re.compile(r"([A-Za-z_][A-Za-z0-9_]*)\s*(=~|!~|!=|=)\s*\"([^\"]*)\"")


@dataclass(frozen=True)
class RolloutManifests:
    """The folder's objects, each with the file it came from (analysis templates checked)."""

    folder: Path
    objects: list[dict[str, Any]]

    def templates(self) -> list[dict[str, Any]]:
        return [o for o in self.objects if o.get("kind") == ANALYSIS_TEMPLATE]

    def routing(self, mesh: str) -> list[dict[str, Any]]:
        """What the Rollout's traffic routing needs in the cluster before it (its Services and
        VirtualService): on Istio only, where the mesh follows the VirtualService's weights."""
        if not traffic_routed(mesh):
            return []
        return [o for o in self.objects if o.get("kind") in ("Service", "VirtualService")]


def traffic_routed(mesh: str) -> bool:
    """Argo Rollouts routes a canary by weight through Istio; Cilium offers it no traffic router."""
    return mesh.startswith("istio")


def for_mesh(rollout: dict[str, Any], mesh: str) -> dict[str, Any]:
    """The Rollout as it can run on the mesh: without Istio, without traffic routing (the
    canary's weight is then its share of the pods). Changed in place, and returned."""
    return rollout if traffic_routed(mesh) else without_traffic_routing(rollout)


def without_traffic_routing(rollout: dict[str, Any]) -> dict[str, Any]:
    """No trafficRouting nor the Services it names. Changed in place, and returned."""
    canary = ((rollout.get("spec") or {}).get("strategy") or {}).get("canary") or {}
    for key in ("trafficRouting", "canaryService", "stableService"):
        canary.pop(key, None)
    return rollout


def rollouts_dir(topo: Topology) -> Path:
    """Beside the topology's payment-gateway manifests; manifests of a team's own that came
    without it get the shipped ones (the Rollout they describe is this tool's payment-gateway)."""
    beside = topo.manifests_dir().parent / ROLLOUTS_DIR
    if beside.is_dir():
        return beside
    shipped = default_topology_path().parent / "manifests" / ROLLOUTS_DIR
    return shipped if shipped.is_dir() else beside


def load_rollout_manifests(folder: Path) -> RolloutManifests:
    """Every object of the folder's YAML files; each AnalysisTemplate checked against what the
    drill's SLI endpoint serves. ConfigError (exit 2) naming file, line and field otherwise."""
    if not folder.is_dir():
        raise ConfigError(
            f"{folder} is missing",
            hint="the Argo Rollouts manifests live beside the payment-gateway manifests (clusters/manifests/rollouts)",
        )
    objects: list[dict[str, Any]] = []
    for f in sorted(folder.glob("*.yaml")):
        for doc, lines in load_documents(f):
            if not isinstance(doc, dict) or "kind" not in doc or "apiVersion" not in doc:
                raise ConfigError(
                    "not a Kubernetes object (needs apiVersion and kind)", source=str(f), line=lines.get(())
                )
            if doc["kind"] == ANALYSIS_TEMPLATE:
                check_template(doc, str(f), lines)
            objects.append(doc)
    return RolloutManifests(folder, objects)


def check_template(template: dict[str, Any], source: str, lines: dict[Loc, int] | None = None) -> None:
    lines = lines or {}
    name = str((template.get("metadata") or {}).get("name") or "?")
    metrics = (template.get("spec") or {}).get("metrics")
    if not isinstance(metrics, list):
        raise ConfigError(
            f"AnalysisTemplate {name} has no metrics list", source=source, field="spec.metrics", line=lines.get(())
        )
    for i, metric in enumerate(metrics):
        provider = (metric or {}).get("provider") or {}
        loc: Loc = ("spec", "metrics", i, "provider")
        where = f"AnalysisTemplate {name}, metric {(metric or {}).get('name', i)!s}"
        if "web" in provider:
            _check_web(provider["web"] or {}, where, source, (*loc, "web"), lines)
        if "prometheus" in provider:
            _check_prometheus(provider["prometheus"] or {}, where, source, (*loc, "prometheus"), lines)


def _field(loc: Loc) -> str:
    return "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in loc).lstrip(".")


def _check_web(web: dict[str, Any], where: str, source: str, loc: Loc, lines: dict[Loc, int]) -> None:
    url = str(web.get("url") or "")
    if "/analysis" not in url:
        return  # another service's endpoint: not the drill's to judge
    path = str(web.get("jsonPath") or "")
    m = _JSON_FIELD.match(path)
    asked = m.group(1) if m else path
    if asked not in ANALYSIS_FIELDS:
        raise ConfigError(
            f"{where}: jsonPath {path!r} reads {asked!r}, which the drill's /analysis does not serve",
            source=source,
            field=_field((*loc, "jsonPath")),
            line=lines.get((*loc, "jsonPath")),
            hint=f"/analysis serves {', '.join(sorted(ANALYSIS_FIELDS))}",
        )


def _check_prometheus(prom: dict[str, Any], where: str, source: str, loc: Loc, lines: dict[Loc, int]) -> None:
    # Argo Rollouts fills {{args.x}} before the query is sent: its braces are not PromQL's.
    query = _ARG.sub(_ARG_VALUE, str(prom.get("query") or ""))
    qloc = (*loc, "query")

    def refuse(reason: str, hint: str) -> ConfigError:
        return ConfigError(f"{where}: {reason}", source=source, field=_field(qloc), line=lines.get(qloc), hint=hint)

    for metric, selector in _METRIC.findall(query):
        if metric not in METRICS:
            raise refuse(
                f"the query asks for {metric}, which the drill's /metrics does not export",
                f"it exports {', '.join(sorted(METRICS))}",
            )
        for label, _op, value in _LABEL.findall(selector or ""):
            if label not in METRICS[metric]:
                raise refuse(
                    f"{metric} has no label {label!r}",
                    f"{metric} has {', '.join(sorted(METRICS[metric])) or 'no labels'}",
                )
            if label == "window" and _ARG_VALUE not in value and value not in METRIC_WINDOWS:
                raise refuse(
                    f"{metric} is exported for windows {', '.join(METRIC_WINDOWS)}, not {value!r}",
                    "pick one of those windows (or ask /analysis, which takes any window up to 6h)",
                )
