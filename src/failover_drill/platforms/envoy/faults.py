"""Faults that act on the Envoy data plane and the replicas' own switches, the same on every
platform that runs the shared gateways and front door: link latency and partition (the gateways'
fault-filter runtime keys), blackout (the front door), brownout and lost-response (each replica's
fault switch), certificate expiry (a lapsed certificate delivered over SDS)."""

from __future__ import annotations

import datetime as dt
import json
from typing import Any, Protocol

from failover_drill.errors import FaultError
from failover_drill.faults.model import (
    FRONT_DOOR,
    Blackout,
    Brownout,
    CertExpiry,
    CertVariant,
    LinkLatency,
    LostResponse,
    Partition,
)
from failover_drill.platforms.envoy import admin
from failover_drill.platforms.envoy.config import (
    PARTITION_DELAY_MS,
    jitter_key,
    jitter_steps_ms,
    link_key,
    sds_cert,
    write_atomic,
)
from failover_drill.platforms.envoy.layout import Layout
from failover_drill.platforms.fault_table import Handler, Plan
from failover_drill.platforms.pki import MeshCA


class DataPlane(Protocol):
    """What these handlers need of a running fleet."""

    @property
    def layout(self) -> Layout: ...

    def alive(self, name: str) -> bool:
        """A process of the fleet by name (gateway-<region>, frontdoor) is running."""
        ...

    def replica_urls(self, target: str | None) -> list[str]:
        """http://host:port of every replica in a zone or region."""
        ...

    def replica_alive(self, url: str) -> bool: ...


# -- links: latency and partition, through each gateway's fault-filter runtime keys ---------------
class LinkPlan(Plan):
    # gateway region -> runtime key prefix -> [percent, delay ms]: while the fault is on, and after.
    links: dict[str, dict[str, list[int]]]
    baseline: dict[str, dict[str, list[int]]]


class _LinkHandler(Handler[Any, LinkPlan]):
    plan_type = LinkPlan

    def __init__(self, fleet: DataPlane) -> None:
        self.fleet = fleet

    def values(self, fault: Any) -> dict[str, dict[str, tuple[int, int]]]:
        raise NotImplementedError

    def _baseline(self, src: str, dst: str) -> float:
        if src in (FRONT_DOOR, dst):
            return 0.0
        return float(self.fleet.layout.rtt_ms.get(src, {}).get(dst, 0.0))

    def _baseline_value(self, key: str) -> tuple[int, int]:
        """(percent, ms) of a runtime key when no fault is on: the topology's RTT, and no jitter."""
        parts = key.split(".")  # link.<src>.<dst>[.jitterN]
        if len(parts) > 3:
            return (0, 0)
        rtt = self._baseline(parts[1], parts[2])
        return (100 if rtt > 0 else 0, round(rtt))

    def plan(self, fault: Any) -> LinkPlan:
        links = self.values(fault)
        return LinkPlan(
            links={gw: {k: list(v) for k, v in keys.items()} for gw, keys in links.items()},
            baseline={gw: {k: list(self._baseline_value(k)) for k in keys} for gw, keys in links.items()},
        )

    def inject(self, fault: Any, plan: LinkPlan) -> dict[str, Any]:
        try:
            for gw, keys in plan.links.items():
                admin.runtime_modify(self.fleet.layout.gateways[gw].admin_port, _runtime_values(keys))
        except OSError as exc:
            raise FaultError(f"could not inject {fault.label()}: {exc}", hint="check `failover-drill status`") from None
        return plan.model_dump(mode="json")

    def revert(self, fault: Any, plan: LinkPlan) -> None:
        errors = []
        for gw, keys in plan.baseline.items():
            try:
                admin.runtime_modify(self.fleet.layout.gateways[gw].admin_port, _runtime_values(keys))
            except OSError:
                # A gateway that is down lost its admin overrides with it: nothing to revert there.
                if self.fleet.alive(f"gateway-{gw}"):
                    errors.append(f"gateway-{gw}")
        raise_if(errors, fault)


class LinkLatencyHandler(_LinkHandler):
    def values(self, fault: LinkLatency) -> dict[str, dict[str, tuple[int, int]]]:
        out: dict[str, dict[str, tuple[int, int]]] = {}
        dst = fault.target
        assert dst is not None
        src = fault.source or "*"
        sources = [*self.fleet.layout.regions, FRONT_DOOR] if src == "*" else [src]
        steps = jitter_steps_ms(fault.delay_ms * fault.jitter_pct / 100) if fault.jitter_pct else []
        for s in sources:
            key = link_key(s, dst)
            # The fixed layer sits at the low end of the spread; the jitter steps add the rest.
            out.setdefault(dst, {})[key] = (
                100,
                max(0, round(self._baseline(s, dst) + fault.delay_ms - sum(steps) / 2)),
            )
            for i, step in enumerate(steps):
                out[dst][jitter_key(key, i)] = (50 if step > 0 else 0, step)
        return out


class PartitionHandler(_LinkHandler):
    def values(self, fault: Partition) -> dict[str, dict[str, tuple[int, int]]]:
        out: dict[str, dict[str, tuple[int, int]]] = {}
        dst, src = fault.target, fault.source or FRONT_DOOR
        assert dst is not None
        if src == FRONT_DOOR:
            # Nothing from the front door gets through: health probes and every client's requests.
            for s in [*self.fleet.layout.regions, FRONT_DOOR]:
                out.setdefault(dst, {})[link_key(s, dst)] = (100, PARTITION_DELAY_MS)
        else:
            # Both directions between two regions: users of one reaching the other, and mesh traffic.
            out.setdefault(dst, {})[link_key(src, dst)] = (100, PARTITION_DELAY_MS)
            out.setdefault(src, {})[link_key(dst, src)] = (100, PARTITION_DELAY_MS)
        return out


# -- gray failure: the replicas' own fault switch --------------------------------------------------
class ReplicaPlan(Plan):
    replica_urls: list[str] = []  # http://host:port of each replica's own fault switch
    replica_ports: list[int] = []  # loopback ports, as plans said before replicas had hosts

    def urls(self) -> list[str]:
        return self.replica_urls or [f"http://127.0.0.1:{p}" for p in self.replica_ports]


class _ReplicaSwitch(Handler[Any, ReplicaPlan]):
    plan_type = ReplicaPlan

    def __init__(self, fleet: DataPlane) -> None:
        self.fleet = fleet

    def body(self, fault: Any) -> dict[str, Any]:
        raise NotImplementedError

    def plan(self, fault: Any) -> ReplicaPlan:
        urls = self.fleet.replica_urls(fault.target)
        if not urls:
            raise FaultError(f"{fault.label()}: no replica in {fault.target!r}")
        return ReplicaPlan(replica_urls=urls)

    def inject(self, fault: Any, plan: ReplicaPlan) -> dict[str, Any]:
        try:
            urls = plan.urls()
            if not urls:
                raise FaultError(f"{fault.label()}: the plan names no replica")
            for url in urls:
                status, text = admin.request(f"{url}/_drill/faults", method="POST", body=self.body(fault), timeout=1.0)
                # The switch answers with what it now holds: a fault that did not take is an error,
                # never a drill that silently measured nothing.
                if status != 200 or any(json.loads(text).get(k) != v for k, v in self.body(fault).items()):
                    raise FaultError(f"could not inject {fault.label()}: {url} answered {status} {text[:200]}")
        except OSError as exc:
            raise FaultError(f"could not inject {fault.label()}: {exc}", hint="check `failover-drill status`") from None
        return plan.model_dump(mode="json")

    def revert(self, fault: Any, plan: ReplicaPlan) -> None:
        errors = []
        for url in plan.urls():
            try:
                admin.request(f"{url}/_drill/faults", method="POST", body={}, timeout=1.0)
            except OSError:
                # A replica that is not answering lost its fault switch or is already down.
                if self.fleet.replica_alive(url):
                    errors.append(f"replica {url}")
        raise_if(errors, fault)


class BrownoutHandler(_ReplicaSwitch):
    def body(self, fault: Brownout) -> dict[str, Any]:
        return {"fail_pct": fault.fail_pct, "delay_ms": fault.delay_ms}


class LostResponseHandler(_ReplicaSwitch):
    def body(self, fault: LostResponse) -> dict[str, Any]:
        return {"drop_after_commit_pct": fault.fail_pct}


# -- blackout: the front door aborts everything ----------------------------------------------------
class BlackoutPlan(Plan):
    frontdoor_admin: int


class BlackoutHandler(Handler[Blackout, BlackoutPlan]):
    plan_type = BlackoutPlan

    def __init__(self, fleet: DataPlane) -> None:
        self.fleet = fleet

    def plan(self, fault: Blackout) -> BlackoutPlan:
        return BlackoutPlan(frontdoor_admin=self.fleet.layout.frontdoor_admin_port)

    def inject(self, fault: Blackout, plan: BlackoutPlan) -> dict[str, Any]:
        try:
            admin.runtime_modify(plan.frontdoor_admin, {"blackout.abort_percent": 100, "blackout.http_status": 503})
        except OSError as exc:
            raise FaultError(f"could not inject {fault.label()}: {exc}", hint="check `failover-drill status`") from None
        return plan.model_dump(mode="json")

    def revert(self, fault: Blackout, plan: BlackoutPlan) -> None:
        try:
            admin.runtime_modify(plan.frontdoor_admin, {"blackout.abort_percent": 0})
        except OSError:
            if self.fleet.alive("frontdoor"):
                raise_if(["frontdoor"], fault)


# -- certificate expiry: a real lapsed certificate, delivered over SDS ------------------------------
class CertPlan(Plan):
    cert: CertVariant
    region: str


class CertExpiryHandler(Handler[CertExpiry, CertPlan]):
    plan_type = CertPlan

    def __init__(self, fleet: DataPlane) -> None:
        self.fleet = fleet

    def plan(self, fault: CertExpiry) -> CertPlan:
        assert fault.target is not None
        return CertPlan(cert=fault.cert, region=fault.target)

    def inject(self, fault: CertExpiry, plan: CertPlan) -> dict[str, Any]:
        """Make the region's gateway certificate lapse for real; rotation is stopped meanwhile."""
        layout = self.fleet.layout
        ca = MeshCA(layout.pki_dir())
        region = plan.region
        ca.rotation_flag(region).touch()
        if plan.cert == "leaf":
            leaf = ca.issue_leaf(region, expired=True)
            expired_at = leaf.not_after
        elif plan.cert == "intermediate":
            ca.issue_intermediate(region, expired=True)
            leaf = ca.issue_leaf(region, clamp=False)
            expired_at = ca.intermediate_not_after(region)
        else:  # rotation-stopped: a short-lived leaf that nobody renews
            leaf = ca.issue_leaf(region, valid_for=dt.timedelta(seconds=fault.ttl_s))
            expired_at = leaf.not_after
        write_atomic(layout.sds_dir(region) / "cert.json", sds_cert(leaf.cert_pem, leaf.key_pem))
        return {
            **plan.model_dump(mode="json"),
            "expired_at_wall": expired_at.timestamp(),
            "expired_at": expired_at.isoformat(),
        }

    def revert(self, fault: CertExpiry, plan: CertPlan) -> None:
        layout = self.fleet.layout
        ca = MeshCA(layout.pki_dir())
        if plan.cert == "intermediate":
            ca.issue_intermediate(plan.region)
        leaf = ca.issue_leaf(plan.region)
        write_atomic(layout.sds_dir(plan.region) / "cert.json", sds_cert(leaf.cert_pem, leaf.key_pem))
        ca.rotation_flag(plan.region).unlink(missing_ok=True)


def raise_if(errors: list[str], fault: Any) -> None:
    if errors:
        raise FaultError(
            f"could not revert {fault.label()} on {', '.join(errors)}", hint="run `failover-drill recover` to retry"
        )


def _runtime_values(keys: dict[str, list[int]]) -> dict[str, int]:
    values: dict[str, int] = {}
    for key, (pct, ms) in keys.items():
        values[f"{key}.delay_percent"] = pct
        values[f"{key}.delay_ms"] = max(1, ms)
    return values
