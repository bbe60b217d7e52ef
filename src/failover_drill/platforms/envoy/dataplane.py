"""The Envoy data plane every platform with gateways shares: a gateway per region and the front
door (the MultiClusterService), their files (bootstraps, SDS certificates from the mesh CA, empty
EDS), their processes, the checks that they are serving, and the events they log."""

from __future__ import annotations

import json
import urllib.request
from pathlib import Path

from failover_drill.config.manifests import MeshPolicy
from failover_drill.errors import PlatformError
from failover_drill.platforms import processes as procs
from failover_drill.platforms.base import PlatformEvent
from failover_drill.platforms.envoy import admin
from failover_drill.platforms.envoy.binary import ENVOY_FLAGS
from failover_drill.platforms.envoy.config import (
    CANARY_CLUSTER,
    eds_response,
    frontdoor_bootstrap,
    gateway_bootstrap,
    sds_cert,
    sds_root,
    write_atomic,
)
from failover_drill.platforms.envoy.events import parse_event
from failover_drill.platforms.envoy.layout import Layout
from failover_drill.platforms.pki import MeshCA
from failover_drill.platforms.polling import wait_until

_NO_PROXY = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def prepare_files(layout: Layout, policy: MeshPolicy, canary_split: bool = False) -> None:
    """canary_split: the gateways split users' traffic between stable and canary by the weights
    their control plane sets (see config.SPLIT)."""
    root_dir = layout.root
    for sub in ("eds", "sds", "cp", "events", "logs", "envoy", "pki", "ledgers"):
        d = root_dir / sub
        if d.exists() and sub in ("eds", "cp", "events", "ledgers"):
            for f in d.rglob("*"):
                if f.is_file():
                    f.unlink()
        d.mkdir(parents=True, exist_ok=True)
    ca = MeshCA(layout.pki_dir())
    ca.create(layout.regions)
    root = sds_root(ca.root_pem())
    write_atomic(root_dir / "sds" / "frontdoor" / "root.json", root)
    for region in layout.regions:
        leaf = ca.issue_leaf(region)
        write_atomic(layout.sds_dir(region) / "cert.json", sds_cert(leaf.cert_pem, leaf.key_pem))
        write_atomic(layout.sds_dir(region) / "root.json", root)
        eds = layout.eds_dir(region)
        write_atomic(eds / "payment-gateway.json", eds_response("payment-gateway", 0, []))
        write_atomic(eds / "pg-local.json", eds_response("pg-local", 0, []))
        write_atomic(eds / f"{CANARY_CLUSTER}.json", eds_response(CANARY_CLUSTER, 0, []))
        write_atomic(
            layout.envoy_dir() / f"gateway-{region}.json", gateway_bootstrap(layout, region, policy, canary_split)
        )
    write_atomic(layout.envoy_dir() / "frontdoor.json", frontdoor_bootstrap(layout, policy))


def _envoy(
    name: str, kind: str, config: Path, envoy: Path, admin_port: int, log: Path, conc: int, region: str | None = None
) -> procs.ProcSpec:
    return procs.ProcSpec(
        name=name,
        kind=kind,
        region=region,
        port=admin_port,
        log=str(log),
        argv=[str(envoy), "-c", str(config), *ENVOY_FLAGS, "--concurrency", str(conc), "--log-level", "warning"],
    )


def envoy_specs(layout: Layout, envoy: Path, concurrency: int = 1) -> list[procs.ProcSpec]:
    """A gateway per region, then the front door."""
    logs, conf = layout.logs_dir(), layout.envoy_dir()
    specs = [
        _envoy(
            f"gateway-{region}",
            "gateway",
            conf / f"gateway-{region}.json",
            envoy,
            gw.admin_port,
            logs / f"gateway-{region}.log",
            concurrency,
            region,
        )
        for region, gw in layout.gateways.items()
    ]
    specs.append(
        _envoy(
            "frontdoor",
            "frontdoor",
            conf / "frontdoor.json",
            envoy,
            layout.frontdoor_admin_port,
            logs / "frontdoor.log",
            concurrency,
        )
    )
    return specs


def envoy_live(admin_port: int) -> bool:
    try:
        status, text = admin.request(f"http://127.0.0.1:{admin_port}/ready", timeout=0.5)
    except OSError:
        return False
    return status == 200 and "LIVE" in text


def gateway_loaded(layout: Layout, region: str, want: set[str] | None = None) -> bool:
    """The region's gateway holds every one of its replicas as a healthy host (host:port)."""
    hosts = admin.cluster_hosts(layout.gateways[region].admin_port, timeout=0.5).get("payment-gateway", {})
    if want is None:
        want = {f"{r.host}:{r.port}" for r in layout.region_replicas(region)}
    return bool(want) and want <= {h for h, flags in hosts.items() if flags == "healthy"}


def served_home(layout: Layout, region: str) -> bool:
    for _ in range(3):
        req = urllib.request.Request(layout.frontdoor_url() + "/healthz", headers={"x-client-region": region})
        with _NO_PROXY.open(req, timeout=1.0) as resp:
            if resp.headers.get("x-served-region") != region:
                return False
    return True


def frontdoor_all_healthy(layout: Layout) -> bool:
    hosts = admin.cluster_hosts(layout.frontdoor_admin_port, timeout=0.5)
    clusters = [hosts.get(f"mcs-{r}", {}) for r in layout.regions]
    return all(c and all(flags == "healthy" for flags in c.values()) for c in clusters)


def read_events(layout: Layout, since_wall: float) -> list[PlatformEvent]:
    """Envoy's health-check and outlier events and the control planes' pushes, in time order."""
    out: list[PlatformEvent] = []
    for f in sorted(layout.events_dir().glob("*.jsonl")):
        for line in f.read_text(errors="replace").splitlines():
            try:
                ev = parse_event(json.loads(line), f.stem, layout)
            except (ValueError, KeyError, TypeError):
                continue
            if ev is not None and ev.wall >= since_wall:
                out.append(ev)
    out.sort(key=lambda e: e.wall)
    return out


def wait_steady(
    layout: Layout, specs: list[procs.ProcSpec], region: str, timeout_s: float, fleet: str, down_cmd: str
) -> None:
    """Before a baseline: every process of the fleet running and the users' region served at home."""

    def not_yet() -> str | None:
        broken = [s.name for s in specs if not procs.alive(s) or procs.frozen(s)]
        if broken:
            return f"not running: {', '.join(broken)}"
        try:
            return None if served_home(layout, region) else f"{region} is not served at home"
        except OSError:
            return f"{region} is not served at home"

    wait_until(
        not_yet,
        timeout_s,
        0.2,
        lambda what: PlatformError(
            f"the {fleet} is not steady ({what})", hint=f"run `failover-drill recover`, or `{down_cmd}` and retry"
        ),
    )
