"""Reads the payment-gateway manifests (base + mesh-profile overlay) and extracts the settings
a mesh would turn into proxy config: readiness timing, outlier detection, locality, retries,
the Cilium global-service annotations and the front door's health check.

The sandbox turns this MeshPolicy into Envoy config the way istiod or Cilium would; the kind
platform applies the same manifests to real clusters.
"""

from __future__ import annotations

import copy
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from failover_drill.config.yamlio import load_documents
from failover_drill.errors import ConfigError

# Istio's outlierDetection defaults (FACTS.md) and default retry policy.
ISTIO_OUTLIER_DEFAULTS = {
    "consecutive5xxErrors": 5,
    "interval": "10s",
    "baseEjectionTime": "30s",
    "maxEjectionPercent": 10,
    "minHealthPercent": 0,
}
ISTIO_DEFAULT_RETRY_ON = (
    "connect-failure",
    "refused-stream",
    "unavailable",
    "cancelled",
    "retriable-status-codes",
)


@dataclass(frozen=True)
class Readiness:
    path: str = "/healthz"
    period_s: float = 10.0
    timeout_s: float = 1.0
    failure_threshold: int = 3
    success_threshold: int = 1
    initial_delay_s: float = 0.0


@dataclass(frozen=True)
class Outlier:
    consecutive_5xx: int | None
    consecutive_gateway: int | None
    interval_s: float
    base_ejection_s: float
    max_ejection_pct: int
    min_health_pct: int


@dataclass(frozen=True)
class Retry:
    attempts: int
    per_try_timeout_s: float | None
    retry_on: tuple[str, ...]
    retriable_status_codes: tuple[int, ...] = ()
    remote_localities: bool = False


@dataclass(frozen=True)
class FrontDoorHealth:
    path: str = "/healthz"
    interval_s: float = 5.0
    timeout_s: float = 5.0
    healthy_threshold: int = 2
    unhealthy_threshold: int = 2


@dataclass(frozen=True)
class MeshPolicy:
    profile: str
    mesh: str  # "istio" or "cilium"
    readiness: Readiness
    front_door: FrontDoorHealth
    outlier: Outlier | None = None
    retry: Retry | None = None
    route_timeout_s: float | None = None
    locality_enabled: bool = True
    cilium_global: bool = False
    cilium_affinity: str | None = None
    objects: list[dict[str, Any]] = field(default_factory=list, compare=False)


_DURATION = re.compile(r"^(\d+(?:\.\d+)?)(ms|s|m|h)$")


def parse_duration(value: Any, where: str) -> float:
    """Istio / Kubernetes duration ("10s", "300ms", "1m") in seconds."""
    if isinstance(value, int | float):
        return float(value)
    m = _DURATION.match(str(value).strip())
    if not m:
        raise ConfigError(f"{value!r} is not a duration", field=where, hint="write it like 10s, 300ms or 1m")
    n, unit = float(m.group(1)), m.group(2)
    return n * {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}[unit]


def _merge(base: Any, over: Any) -> Any:
    """Deep merge; lists of named objects (containers, ports) merge by name, other lists replace."""
    if isinstance(base, dict) and isinstance(over, dict):
        out = dict(base)
        for k, v in over.items():
            out[k] = _merge(base[k], v) if k in base else copy.deepcopy(v)
        return out
    if (
        isinstance(base, list)
        and isinstance(over, list)
        and all(isinstance(x, dict) and "name" in x for x in base + over)
    ):
        merged = [copy.deepcopy(x) for x in base]
        index = {x["name"]: i for i, x in enumerate(merged)}
        for item in over:
            if item["name"] in index:
                merged[index[item["name"]]] = _merge(merged[index[item["name"]]], item)
            else:
                merged.append(copy.deepcopy(item))
        return merged
    return copy.deepcopy(over)


def _key(obj: dict[str, Any]) -> tuple[str, str, str]:
    meta = obj.get("metadata") or {}
    return (str(obj.get("kind")), str(meta.get("namespace", "")), str(meta.get("name", "")))


def _read_dir(d: Path) -> list[tuple[dict[str, Any], str]]:
    out: list[tuple[dict[str, Any], str]] = []
    for f in sorted(d.glob("*.yaml")):
        for doc, lines in load_documents(f):
            if not isinstance(doc, dict) or "kind" not in doc or "apiVersion" not in doc:
                raise ConfigError(
                    "not a Kubernetes object (needs apiVersion and kind)",
                    source=str(f),
                    line=lines.get((), 1),
                )
            out.append((doc, str(f)))
    return out


def load_objects(manifests_dir: Path, profile: str) -> list[dict[str, Any]]:
    """Base objects with the profile's overlay merged in (kustomize-like, by kind/namespace/name)."""
    base = manifests_dir / "base"
    if not base.is_dir():
        raise ConfigError(f"{base} is missing", hint="the manifests folder needs a base/ subfolder")
    objects: dict[tuple[str, str, str], dict[str, Any]] = {}
    for doc, _ in _read_dir(base):
        objects[_key(doc)] = doc
    overlay = manifests_dir / "profiles" / profile
    if overlay.is_dir():
        for doc, _ in _read_dir(overlay):
            k = _key(doc)
            objects[k] = _merge(objects[k], doc) if k in objects else doc
    return list(objects.values())


def _find(objects: list[dict[str, Any]], kind: str) -> dict[str, Any] | None:
    for o in objects:
        if o.get("kind") == kind:
            return o
    return None


def _readiness(objects: list[dict[str, Any]]) -> Readiness:
    dep = _find(objects, "Deployment")
    if dep is None:
        raise ConfigError("no Deployment in the manifests", hint="add the payment-gateway Deployment")
    try:
        container = dep["spec"]["template"]["spec"]["containers"][0]
    except (KeyError, IndexError, TypeError):
        raise ConfigError("Deployment has no containers", field="spec.template.spec.containers") from None
    probe = container.get("readinessProbe")
    if not probe:
        raise ConfigError(
            "the payment-gateway container has no readinessProbe",
            field="spec.template.spec.containers[0].readinessProbe",
            hint="add an httpGet readinessProbe on /healthz: failover timing depends on it",
        )
    http_get = probe.get("httpGet") or {}
    # Kubernetes defaults for probe fields.
    return Readiness(
        path=str(http_get.get("path", "/healthz")),
        period_s=float(probe.get("periodSeconds", 10)),
        timeout_s=float(probe.get("timeoutSeconds", 1)),
        failure_threshold=int(probe.get("failureThreshold", 3)),
        success_threshold=int(probe.get("successThreshold", 1)),
        initial_delay_s=float(probe.get("initialDelaySeconds", 0)),
    )


def _front_door(objects: list[dict[str, Any]]) -> FrontDoorHealth:
    bc = _find(objects, "BackendConfig")
    hc = ((bc or {}).get("spec") or {}).get("healthCheck") or {}
    # GCP load-balancer health-check defaults: 5 s interval, 5 s timeout, 2 healthy, 2 unhealthy.
    return FrontDoorHealth(
        path=str(hc.get("requestPath", "/healthz")),
        interval_s=float(hc.get("checkIntervalSec", 5)),
        timeout_s=float(hc.get("timeoutSec", 5)),
        healthy_threshold=int(hc.get("healthyThreshold", 2)),
        unhealthy_threshold=int(hc.get("unhealthyThreshold", 2)),
    )


def _outlier(dr: dict[str, Any] | None) -> tuple[Outlier | None, bool]:
    tp = ((dr or {}).get("spec") or {}).get("trafficPolicy") or {}
    lb = (tp.get("loadBalancer") or {}).get("localityLbSetting") or {}
    locality = bool(lb.get("enabled", True))
    od = tp.get("outlierDetection")
    if od is None:
        return None, locality
    merged = {**ISTIO_OUTLIER_DEFAULTS, **od}
    where = "DestinationRule.spec.trafficPolicy.outlierDetection"
    return (
        Outlier(
            consecutive_5xx=int(merged["consecutive5xxErrors"]) if merged.get("consecutive5xxErrors") else None,
            consecutive_gateway=(
                int(merged["consecutiveGatewayErrors"]) if merged.get("consecutiveGatewayErrors") else None
            ),
            interval_s=parse_duration(merged["interval"], f"{where}.interval"),
            base_ejection_s=parse_duration(merged["baseEjectionTime"], f"{where}.baseEjectionTime"),
            max_ejection_pct=int(merged["maxEjectionPercent"]),
            min_health_pct=int(merged["minHealthPercent"]),
        ),
        locality,
    )


def _retry(vs: dict[str, Any] | None) -> tuple[Retry, float | None]:
    http = (((vs or {}).get("spec") or {}).get("http") or [{}])[0]
    timeout = http.get("timeout")
    route_timeout = parse_duration(timeout, "VirtualService.spec.http[0].timeout") if timeout else None
    r = http.get("retries")
    if r is None:
        return Retry(
            attempts=2, per_try_timeout_s=None, retry_on=ISTIO_DEFAULT_RETRY_ON, retriable_status_codes=(503,)
        ), (route_timeout)
    on = tuple(s.strip() for s in str(r.get("retryOn", ",".join(ISTIO_DEFAULT_RETRY_ON))).split(",") if s.strip())
    codes = tuple(int(s) for s in on if s.isdigit())
    on = tuple(s for s in on if not s.isdigit())
    if codes and "retriable-status-codes" not in on:
        on = (*on, "retriable-status-codes")
    ptt = r.get("perTryTimeout")
    return (
        Retry(
            attempts=int(r.get("attempts", 2)),
            per_try_timeout_s=parse_duration(ptt, "VirtualService.spec.http[0].retries.perTryTimeout") if ptt else None,
            retry_on=on,
            retriable_status_codes=codes or ((503,) if "retriable-status-codes" in on else ()),
            remote_localities=bool(r.get("retryRemoteLocalities", False)),
        ),
        route_timeout,
    )


def load_policy(manifests_dir: Path, profile: str) -> MeshPolicy:
    objects = load_objects(manifests_dir, profile)
    readiness = _readiness(objects)
    front = _front_door(objects)
    mesh = "cilium" if profile.startswith("cilium") else "istio"
    if mesh == "cilium":
        svc = _find(objects, "Service") or {}
        ann = (svc.get("metadata") or {}).get("annotations") or {}
        return MeshPolicy(
            profile=profile,
            mesh=mesh,
            readiness=readiness,
            front_door=front,
            cilium_global=str(ann.get("service.cilium.io/global", "false")).lower() == "true",
            cilium_affinity=ann.get("service.cilium.io/affinity"),
            objects=objects,
        )
    outlier, locality = _outlier(_find(objects, "DestinationRule"))
    retry, route_timeout = _retry(_find(objects, "VirtualService"))
    return MeshPolicy(
        profile=profile,
        mesh=mesh,
        readiness=readiness,
        front_door=front,
        outlier=outlier,
        retry=retry,
        route_timeout_s=route_timeout,
        # Without outlierDetection istiod does not enable locality failover (FACTS.md).
        locality_enabled=locality and outlier is not None,
        objects=objects,
    )
