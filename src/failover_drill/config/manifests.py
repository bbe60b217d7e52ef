"""Reads the payment-gateway manifests (base + mesh-profile overlay) and extracts the settings
a mesh would turn into proxy config: readiness timing, outlier detection, locality, retries,
the Cilium global-service annotations and the front door's health check.

The sandbox turns this MeshPolicy into Envoy config the way istiod or Cilium would; the kind
platform applies the same manifests to real clusters.
"""

from __future__ import annotations

import copy
import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from failover_drill.config.yamlio import Loc, load_documents
from failover_drill.errors import ConfigError, echo

# Istio's outlierDetection defaults (FACTS.md) and default retry policy.
ISTIO_OUTLIER_DEFAULTS: dict[str, Any] = {
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


def parse_duration(value: Any, where: str, *, source: str | None = None, line: int | None = None) -> float:
    """Istio / Kubernetes duration ("10s", "300ms", "1m") in seconds; `where` names the field (or
    the option), `source` and `line` the file it was written in."""
    if isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value) and value >= 0:
        return float(value)
    m = _DURATION.match(str(value).strip())
    if not m:
        raise ConfigError(
            f"{echo(value)} is not a duration",
            source=source,
            line=line,
            field=where,
            hint="write it like 10s, 300ms or 1m",
        )
    n, unit = float(m.group(1)), m.group(2)
    return n * {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}[unit]


def _merge(base: Any, over: Any) -> Any:
    """Deep merge; lists of named objects (containers, ports) merge by name, other lists replace."""
    if isinstance(base, dict) and isinstance(over, dict):
        out = dict(base)
        for k, v in over.items():
            out[k] = _merge(base[k], v) if k in base else copy.deepcopy(v)
        return out
    if isinstance(base, list) and isinstance(over, list) and all(_named(x) for x in base + over):
        merged = [copy.deepcopy(x) for x in base]
        index = {x["name"]: i for i, x in enumerate(merged)}
        for item in over:
            if item["name"] in index:
                merged[index[item["name"]]] = _merge(merged[index[item["name"]]], item)
            else:
                merged.append(copy.deepcopy(item))
        return merged
    return copy.deepcopy(over)


def _named(x: Any) -> bool:
    return isinstance(x, dict) and isinstance(x.get("name"), str | int | float | bool)


# Where a manifest's values were written, as a tree of the object's own shape (so `_merge` merges
# it exactly as it merges the object): each value's leaf is (file, line), each mapping keeps its own
# under _AT (a key YAML cannot produce), and list entries keep their names, which merging matches on.
_AT = ("@",)
Origin = tuple[str, int | None]


def _origins(value: Any, lines: dict[Loc, int], source: str, path: Loc = ()) -> Any:
    at: Origin = (source, lines.get(path))
    if isinstance(value, dict):
        out: dict[Any, Any] = {
            k: v if k == "name" and _named(value) else _origins(v, lines, source, (*path, k)) for k, v in value.items()
        }
        out[_AT] = at
        return out
    if isinstance(value, list):
        return [_origins(v, lines, source, (*path, i)) for i, v in enumerate(value)]
    return at


@dataclass(frozen=True)
class Manifest:
    """One object of the merged manifests, with where each of its values was written (base or overlay)."""

    obj: dict[str, Any]
    origins: dict[Any, Any]

    @property
    def kind(self) -> str:
        return str(self.obj.get("kind"))

    def origin(self, path: Loc) -> Origin:
        """The file and line of the value at path, else of the deepest mapping above it."""
        node: Any = self.origins
        best: Origin = node.get(_AT, ("", None))
        for p in path:
            inside = p in node if isinstance(node, dict) else isinstance(p, int) and 0 <= p < len(node)
            if not isinstance(node, dict | list) or not inside:
                break
            node = node[p]
            if isinstance(node, dict):
                best = node.get(_AT, best)
            elif isinstance(node, tuple):
                best = node
        return best

    def field(self, path: Loc) -> str:
        """Kind.spec.template.spec.containers[0].readinessProbe: as the findings name fields."""
        out = self.kind
        for p in path:
            out += f"[{p}]" if isinstance(p, int) else f".{p}"
        return out

    def error(self, message: str, path: Loc, hint: str | None = None) -> ConfigError:
        source, line = self.origin(path)
        return ConfigError(message, source=source or None, line=line, field=self.field(path), hint=hint)

    def get(self, path: Loc) -> Any:
        """The value at path, None when a step is missing; a step that is not a mapping (or a list,
        for an index) is an error naming the field, not a crash."""
        node: Any = self.obj
        for i, p in enumerate(path):
            if node is None:
                return None
            if isinstance(p, int):
                if not isinstance(node, list):
                    raise self.error(f"is {_a(node)}, not a list", path[:i], hint="see the shipped manifests")
                node = node[p] if p < len(node) else None
            else:
                if not isinstance(node, dict):
                    raise self.error(f"is {_a(node)}, not a mapping", path[:i], hint="see the shipped manifests")
                node = node.get(p)
        return node

    def mapping(self, path: Loc) -> dict[str, Any]:
        value = self.get(path)
        if value is None:
            return {}
        if not isinstance(value, dict):
            raise self.error(f"is {_a(value)}, not a mapping", path, hint="see the shipped manifests")
        return value

    def number(
        self,
        path: Loc,
        default: float,
        *,
        whole: bool = False,
        least: float = 0,
        most: float | None = None,
        seconds: bool = False,
    ) -> float:
        """A numeric field (Kubernetes and Istio write these as plain numbers), within [least, most];
        `seconds` for a field that counts seconds (periodSeconds, checkIntervalSec)."""
        value = self.get(path)
        if value is None:
            return default
        kind = "a whole number" if whole else "a number"
        span = f"at least {least:g}" if most is None else f"from {least:g} to {most:g}"
        hint = f"write {kind} {span}, e.g. {path[-1]}: {default:g}"
        if seconds and isinstance(value, str) and _DURATION.match(value.strip()):
            hint = f"it counts seconds as a plain number, without a unit: {path[-1]}: {parse_duration(value, ''):g}"
        try:
            if isinstance(value, bool):
                raise ValueError
            n = float(value)
        except (TypeError, ValueError):
            raise self.error(f"{echo(value)} is not {kind}", path, hint=hint) from None
        if not math.isfinite(n) or (whole and not n.is_integer()) or n < least or (most is not None and n > most):
            raise self.error(f"{echo(value)} is not {kind} {span}", path, hint=hint)
        return n

    def whole(self, path: Loc, default: int, *, least: int = 0, most: int | None = None) -> int:
        return int(self.number(path, default, whole=True, least=least, most=most))

    def flag(self, path: Loc, default: bool) -> bool:
        value = self.get(path)
        if value is None:
            return default
        if not isinstance(value, bool):
            raise self.error(f"{echo(value)} is not true or false", path, hint=f"{path[-1]}: {str(default).lower()}")
        return value

    def duration(self, path: Loc) -> float | None:
        value = self.get(path)
        if value is None:
            return None
        source, line = self.origin(path)
        return parse_duration(value, self.field(path), source=source or None, line=line)


def _a(value: Any) -> str:
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    return f"the value {echo(value)}"


def _key(obj: dict[str, Any]) -> tuple[str, str, str]:
    meta = obj.get("metadata")
    meta = meta if isinstance(meta, dict) else {}
    return (str(obj.get("kind")), str(meta.get("namespace", "")), str(meta.get("name", "")))


def _read_dir(d: Path) -> list[Manifest]:
    out: list[Manifest] = []
    for f in sorted(d.glob("*.yaml")):
        for doc, lines in load_documents(f):
            if not isinstance(doc, dict) or "kind" not in doc or "apiVersion" not in doc:
                raise ConfigError(
                    "not a Kubernetes object (needs apiVersion and kind)",
                    source=str(f),
                    line=lines.get((), 1),
                )
            out.append(Manifest(doc, _origins(doc, lines, str(f))))
    return out


def load_manifests(manifests_dir: Path, profile: str) -> list[Manifest]:
    """Base objects with the profile's overlay merged in (kustomize-like, by kind/namespace/name),
    each knowing where its values were written."""
    base = manifests_dir / "base"
    if not base.is_dir():
        raise ConfigError(f"{base} is missing", hint="the manifests folder needs a base/ subfolder")
    objects: dict[tuple[str, str, str], Manifest] = {}
    for m in _read_dir(base):
        objects[_key(m.obj)] = m
    overlay = manifests_dir / "profiles" / profile
    if overlay.is_dir():
        for over in _read_dir(overlay):
            k = _key(over.obj)
            was = objects.get(k)
            objects[k] = over if was is None else Manifest(_merge(was.obj, over.obj), _merge(was.origins, over.origins))
    return list(objects.values())


def load_objects(manifests_dir: Path, profile: str) -> list[dict[str, Any]]:
    """Base objects with the profile's overlay merged in (kustomize-like, by kind/namespace/name)."""
    return [m.obj for m in load_manifests(manifests_dir, profile)]


def _find(objects: list[Manifest], kind: str) -> Manifest | None:
    for o in objects:
        if o.kind == kind:
            return o
    return None


READINESS = ("spec", "template", "spec", "containers", 0, "readinessProbe")


def _readiness(objects: list[Manifest]) -> Readiness:
    dep = _find(objects, "Deployment")
    if dep is None:
        raise ConfigError("no Deployment in the manifests", hint="add the payment-gateway Deployment")
    containers = dep.get(READINESS[:4])
    if not isinstance(containers, list) or not containers:
        raise dep.error("Deployment has no containers", READINESS[:4], hint="add the payment-gateway container")
    probe = dep.get(READINESS)
    if not probe:
        raise dep.error(
            "the payment-gateway container has no readinessProbe",
            READINESS,
            hint="add an httpGet readinessProbe on /healthz: failover timing depends on it",
        )
    dep.mapping(READINESS)
    http_get = dep.mapping((*READINESS, "httpGet"))
    # Kubernetes defaults for probe fields (and its limits: periods, timeouts and thresholds >= 1).
    return Readiness(
        path=str(http_get.get("path", "/healthz")),
        period_s=dep.number((*READINESS, "periodSeconds"), 10, seconds=True, least=1),
        timeout_s=dep.number((*READINESS, "timeoutSeconds"), 1, seconds=True, least=1),
        failure_threshold=dep.whole((*READINESS, "failureThreshold"), 3, least=1),
        success_threshold=dep.whole((*READINESS, "successThreshold"), 1, least=1),
        initial_delay_s=dep.number((*READINESS, "initialDelaySeconds"), 0, seconds=True),
    )


def _front_door(objects: list[Manifest]) -> FrontDoorHealth:
    bc = _find(objects, "BackendConfig")
    if bc is None:
        return FrontDoorHealth()
    hc = ("spec", "healthCheck")
    # GCP load-balancer health-check defaults: 5 s interval, 5 s timeout, 2 healthy, 2 unhealthy.
    return FrontDoorHealth(
        path=str(bc.mapping(hc).get("requestPath", "/healthz")),
        interval_s=bc.number((*hc, "checkIntervalSec"), 5, seconds=True, least=1),
        timeout_s=bc.number((*hc, "timeoutSec"), 5, seconds=True, least=1),
        healthy_threshold=bc.whole((*hc, "healthyThreshold"), 2, least=1),
        unhealthy_threshold=bc.whole((*hc, "unhealthyThreshold"), 2, least=1),
    )


def _outlier(dr: Manifest | None) -> tuple[Outlier | None, bool]:
    if dr is None:
        return None, True
    tp = ("spec", "trafficPolicy")
    locality = dr.flag((*tp, "loadBalancer", "localityLbSetting", "enabled"), True)
    if dr.get((*tp, "outlierDetection")) is None:
        return None, locality
    od = (*tp, "outlierDetection")
    dr.mapping(od)
    d = ISTIO_OUTLIER_DEFAULTS
    c5xx = dr.whole((*od, "consecutive5xxErrors"), int(d["consecutive5xxErrors"]))
    gateway = dr.whole((*od, "consecutiveGatewayErrors"), 0)
    return (
        Outlier(
            consecutive_5xx=c5xx or None,
            consecutive_gateway=gateway or None,
            interval_s=_or(dr.duration((*od, "interval")), d["interval"]),
            base_ejection_s=_or(dr.duration((*od, "baseEjectionTime")), d["baseEjectionTime"]),
            max_ejection_pct=dr.whole((*od, "maxEjectionPercent"), int(d["maxEjectionPercent"]), most=100),
            min_health_pct=dr.whole((*od, "minHealthPercent"), int(d["minHealthPercent"]), most=100),
        ),
        locality,
    )


def _or(value: float | None, default: Any) -> float:
    return parse_duration(default, "default") if value is None else value


HTTP0 = ("spec", "http", 0)


def _retry(vs: Manifest | None) -> tuple[Retry, float | None]:
    default = Retry(attempts=2, per_try_timeout_s=None, retry_on=ISTIO_DEFAULT_RETRY_ON, retriable_status_codes=(503,))
    if vs is None:
        return default, None
    vs.mapping(HTTP0)
    route_timeout = vs.duration((*HTTP0, "timeout")) or None
    retries = (*HTTP0, "retries")
    if vs.get(retries) is None:
        return default, route_timeout
    r = vs.mapping(retries)
    on = tuple(s.strip() for s in str(r.get("retryOn", ",".join(ISTIO_DEFAULT_RETRY_ON))).split(",") if s.strip())
    codes = tuple(int(s) for s in on if s.isdigit())
    on = tuple(s for s in on if not s.isdigit())
    if codes and "retriable-status-codes" not in on:
        on = (*on, "retriable-status-codes")
    return (
        Retry(
            attempts=vs.whole((*retries, "attempts"), 2),
            per_try_timeout_s=vs.duration((*retries, "perTryTimeout")) or None,
            retry_on=on,
            retriable_status_codes=codes or ((503,) if "retriable-status-codes" in on else ()),
            remote_localities=vs.flag((*retries, "retryRemoteLocalities"), False),
        ),
        route_timeout,
    )


def load_policy(manifests_dir: Path, profile: str) -> MeshPolicy:
    manifests = load_manifests(manifests_dir, profile)
    objects = [m.obj for m in manifests]
    readiness = _readiness(manifests)
    front = _front_door(manifests)
    mesh = "cilium" if profile.startswith("cilium") else "istio"
    if mesh == "cilium":
        svc = _find(manifests, "Service")
        ann = svc.mapping(("metadata", "annotations")) if svc is not None else {}
        affinity = ann.get("service.cilium.io/affinity")
        return MeshPolicy(
            profile=profile,
            mesh=mesh,
            readiness=readiness,
            front_door=front,
            cilium_global=str(ann.get("service.cilium.io/global", "false")).lower() == "true",
            cilium_affinity=None if affinity is None else str(affinity),
            objects=objects,
        )
    outlier, locality = _outlier(_find(manifests, "DestinationRule"))
    retry, route_timeout = _retry(_find(manifests, "VirtualService"))
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
