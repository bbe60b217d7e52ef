"""Sandbox fault mechanics: real signals to real processes, live Envoy runtime changes, replica
gray-failure switches. plan() says what revert will need before anything is touched."""

from __future__ import annotations

import datetime as dt
import signal
import time
from collections.abc import Callable
from typing import Any

from failover_drill.config.faultspec import FRONT_DOOR, FaultSpec
from failover_drill.errors import FaultError
from failover_drill.platforms import processes as procs
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
from failover_drill.platforms.pki import MeshCA


class FaultOps:
    def __init__(
        self, layout: Layout, specs: list[procs.ProcSpec], on_respawn: Callable[[procs.ProcSpec], None]
    ) -> None:
        self.layout = layout
        self.specs = {s.name: s for s in specs}
        self.on_respawn = on_respawn

    # -- targets --------------------------------------------------------------------------------
    def _procs_for(self, fault: FaultSpec) -> list[str]:
        t = fault.target
        if fault.kind == "region-loss":
            # The whole region: replicas, its gateway and its control plane.
            return [s.name for s in self.specs.values() if s.region == t]
        if fault.kind == "zone-loss":
            if t in self.layout.regions:
                return [s.name for s in self.specs.values() if s.region == t and s.kind == "replica"]
            return [s.name for s in self.specs.values() if s.zone == t]
        if fault.kind == "control-plane-loss":
            return [f"control-plane-{t}"]
        return []

    def _link_values(self, fault: FaultSpec) -> dict[str, dict[str, tuple[int, int]]]:
        """gateway region -> runtime key prefix -> (percent, delay ms) while the fault is on."""
        out: dict[str, dict[str, tuple[int, int]]] = {}
        dst = fault.target
        assert dst is not None
        src = fault.source or "*"
        if fault.kind == "link-latency":
            sources = [*self.layout.regions, FRONT_DOOR] if src == "*" else [src]
            steps = jitter_steps_ms(fault.delay_ms * fault.jitter_pct / 100) if fault.jitter_pct else []
            for s in sources:
                base = self._baseline(s, dst)
                key = link_key(s, dst)
                # The fixed layer sits at the low end of the spread; the jitter steps add the rest.
                out.setdefault(dst, {})[key] = (100, max(0, round(base + fault.delay_ms - sum(steps) / 2)))
                for i, step in enumerate(steps):
                    out[dst][jitter_key(key, i)] = (50 if step > 0 else 0, step)
        elif fault.kind == "partition":
            if src == FRONT_DOOR:
                # Nothing from the front door gets through: health probes and every client's requests.
                for s in [*self.layout.regions, FRONT_DOOR]:
                    out.setdefault(dst, {})[link_key(s, dst)] = (100, PARTITION_DELAY_MS)
            else:
                # Both directions between two regions: users of one reaching the other, and mesh traffic.
                out.setdefault(dst, {})[link_key(src, dst)] = (100, PARTITION_DELAY_MS)
                out.setdefault(src, {})[link_key(dst, src)] = (100, PARTITION_DELAY_MS)
        return out

    def _baseline(self, src: str, dst: str) -> float:
        if src in (FRONT_DOOR, dst):
            return 0.0
        return float(self.layout.rtt_ms.get(src, {}).get(dst, 0.0))

    def _baseline_value(self, key: str) -> tuple[int, int]:
        """(percent, ms) of a runtime key when no fault is on: the topology's RTT, and no jitter."""
        parts = key.split(".")  # link.<src>.<dst>[.jitterN]
        if len(parts) > 3:
            return (0, 0)
        rtt = self._baseline(parts[1], parts[2])
        return (100 if rtt > 0 else 0, round(rtt))

    def _replicas_for(self, fault: FaultSpec) -> list[int]:
        t = fault.target
        return [r.port for r in self.layout.replicas if t in (r.zone, r.region)]

    # -- plan / inject / revert -----------------------------------------------------------------
    def plan(self, fault: FaultSpec) -> dict[str, Any]:
        k = fault.kind
        if k in ("region-loss", "zone-loss", "control-plane-loss"):
            names = self._procs_for(fault)
            if not names:
                raise FaultError(f"{fault.label()}: no sandbox process matches target {fault.target!r}")
            return {"processes": names, "mode": fault.mode}
        if k in ("link-latency", "partition"):
            links = self._link_values(fault)
            baseline = {gw: {key: self._baseline_value(key) for key in keys} for gw, keys in links.items()}
            return {
                "links": {gw: {k2: list(v) for k2, v in keys.items()} for gw, keys in links.items()},
                "baseline": {gw: {k2: list(v) for k2, v in keys.items()} for gw, keys in baseline.items()},
            }
        if k in ("brownout", "lost-response"):
            ports = self._replicas_for(fault)
            if not ports:
                raise FaultError(f"{fault.label()}: no replica in {fault.target!r}")
            return {"replica_ports": ports}
        if k == "blackout":
            return {"frontdoor_admin": self.layout.frontdoor_admin_port}
        if k == "cert-expiry":
            return {"cert": fault.cert, "region": fault.target}
        raise FaultError(f"fault {k!r} is not implemented on the sandbox", hint="see `failover-drill plan --help`")

    def inject(self, fault: FaultSpec, plan: dict[str, Any]) -> dict[str, Any]:
        k = fault.kind
        try:
            if "processes" in plan:
                sig = signal.SIGSTOP if plan["mode"] == "freeze" else signal.SIGKILL
                for name in plan["processes"]:
                    spec = self.specs[name]
                    procs.signal_proc(spec, sig)
                    if sig == signal.SIGKILL and spec.pid is not None:
                        procs.reap(spec.pid)  # our own child becomes a zombie otherwise
            elif "links" in plan:
                for gw, keys in plan["links"].items():
                    admin.runtime_modify(self.layout.gateways[gw].admin_port, _runtime_values(keys))
            elif k in ("brownout", "lost-response"):
                body = (
                    {"fail_pct": fault.fail_pct, "delay_ms": fault.delay_ms}
                    if k == "brownout"
                    else {"drop_after_commit_pct": fault.fail_pct}
                )
                for port in plan["replica_ports"]:
                    admin.request(f"http://127.0.0.1:{port}/_drill/faults", method="POST", body=body, timeout=1.0)
            elif k == "blackout":
                admin.runtime_modify(
                    plan["frontdoor_admin"], {"blackout.abort_percent": 100, "blackout.http_status": 503}
                )
            elif k == "cert-expiry":
                return {**plan, **self._expire(plan["region"], plan["cert"], fault.ttl_s)}
        except OSError as exc:
            raise FaultError(f"could not inject {fault.label()}: {exc}", hint="check `failover-drill status`") from None
        return plan

    def revert(self, fault: FaultSpec, plan: dict[str, Any]) -> None:
        k = fault.kind
        errors: list[str] = []
        if "processes" in plan:
            restarted: list[procs.ProcSpec] = []
            for name in plan["processes"]:
                spec = self.specs.get(name)
                if spec is None:
                    continue
                if procs.alive(spec):
                    procs.signal_proc(spec, signal.SIGCONT)
                else:
                    procs.spawn(spec, fleet=self.layout.state_dir)
                    self.on_respawn(spec)
                    restarted.append(spec)
            # A restart that dies at once (a port still held, a bad config) must not pass for a revert.
            time.sleep(0.3 if restarted else 0)
            for spec in restarted:
                if not procs.alive(spec):
                    errors.append(f"{spec.name} exited after restart: {procs.log_tail(spec.log, 3)}")
        elif "links" in plan:
            for gw, keys in plan["baseline"].items():
                try:
                    admin.runtime_modify(self.layout.gateways[gw].admin_port, _runtime_values(keys))
                except OSError:
                    # A gateway that is down lost its admin overrides with it: nothing to revert there.
                    if procs.alive(self.specs[f"gateway-{gw}"]):
                        errors.append(f"gateway-{gw}")
        elif k in ("brownout", "lost-response"):
            for port in plan["replica_ports"]:
                try:
                    admin.request(f"http://127.0.0.1:{port}/_drill/faults", method="POST", body={}, timeout=1.0)
                except OSError:
                    # A replica that is not answering lost its fault switch or is already down.
                    if self._port_alive(port):
                        errors.append(f"replica port {port}")
        elif k == "cert-expiry":
            self._renew(plan["region"], intermediate=plan["cert"] == "intermediate")
        elif k == "blackout":
            try:
                admin.runtime_modify(plan["frontdoor_admin"], {"blackout.abort_percent": 0})
            except OSError:
                if procs.alive(self.specs["frontdoor"]):
                    errors.append("frontdoor")
        if errors:
            raise FaultError(
                f"could not revert {fault.label()} on {', '.join(errors)}",
                hint="run `failover-drill recover` to retry",
            )

    def _expire(self, region: str, variant: str, ttl_s: float) -> dict[str, Any]:
        """Make the region's gateway certificate lapse for real; rotation is stopped meanwhile."""
        ca = MeshCA(self.layout.pki_dir())
        ca.rotation_flag(region).touch()
        if variant == "leaf":
            leaf = ca.issue_leaf(region, expired=True)
            expired_at = leaf.not_after
        elif variant == "intermediate":
            ca.issue_intermediate(region, expired=True)
            leaf = ca.issue_leaf(region, clamp=False)
            expired_at = ca.intermediate_not_after(region)
        else:  # rotation-stopped: a short-lived leaf that nobody renews
            leaf = ca.issue_leaf(region, valid_for=dt.timedelta(seconds=ttl_s))
            expired_at = leaf.not_after
        write_atomic(self.layout.sds_dir(region) / "cert.json", sds_cert(leaf.cert_pem, leaf.key_pem))
        return {"expired_at_wall": expired_at.timestamp(), "expired_at": expired_at.isoformat()}

    def _renew(self, region: str, intermediate: bool) -> None:
        ca = MeshCA(self.layout.pki_dir())
        if intermediate:
            ca.issue_intermediate(region)
        leaf = ca.issue_leaf(region)
        write_atomic(self.layout.sds_dir(region) / "cert.json", sds_cert(leaf.cert_pem, leaf.key_pem))
        ca.rotation_flag(region).unlink(missing_ok=True)

    def _port_alive(self, port: int) -> bool:
        return any(s.port == port and procs.alive(s) for s in self.specs.values())


def _runtime_values(keys: dict[str, list[int]]) -> dict[str, int]:
    values: dict[str, int] = {}
    for key, (pct, ms) in keys.items():
        values[f"{key}.delay_percent"] = pct
        values[f"{key}.delay_ms"] = max(1, ms)
    return values
