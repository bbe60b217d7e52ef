"""Envoy's own event logs (health-check and outlier-detection events) and the control plane's
endpoint pushes, as platform events on the drill's timeline."""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

from failover_drill.platforms.base import PlatformEvent
from failover_drill.platforms.envoy.layout import Layout


def _ts(value: Any) -> float:
    if isinstance(value, int | float):
        return float(value)
    return dt.datetime.fromisoformat(str(value).replace("Z", "+00:00")).timestamp()


_HC_KINDS = {
    "eject_unhealthy_event": "health_check_eject",
    "add_healthy_event": "health_check_healthy",
    "health_check_failure_event": "health_check_failure",
    "degraded_healthy_host": "health_check_degraded",
}


def parse_event(raw: dict[str, Any], stem: str, layout: Layout) -> PlatformEvent | None:
    if stem.startswith("control-plane-"):
        return PlatformEvent(
            wall=float(raw["ts"]),
            source=raw["source"],
            kind=raw["event"],
            region=raw.get("region") or stem.removeprefix("control-plane-"),
            zone=raw.get("zone"),
            detail=raw.get("replica") or raw.get("detail") or json.dumps(raw.get("priorities", "")),
        )
    if stem == "frontdoor-hc":
        kind = next((v for k, v in _HC_KINDS.items() if k in raw), None)
        if kind is None:
            return None
        sock = raw["host"]["socket_address"]
        name, region, zone = layout.port_owner(int(sock["port_value"]), sock.get("address", "127.0.0.1"))
        return PlatformEvent(
            wall=_ts(raw["timestamp"]),
            source="frontdoor",
            kind=kind,
            region=region,
            zone=zone,
            detail=f"{raw.get('cluster_name')} {name}",
        )
    if stem.endswith("-outlier"):
        host, port = str(raw["upstream_url"]).rsplit(":", 1)
        name, region, zone = layout.port_owner(int(port), host)
        action = str(raw.get("action", "")).lower()
        enforced = raw.get("enforced", True)
        kind = f"outlier_{action}" + ("" if enforced else "_not_enforced")
        return PlatformEvent(
            wall=_ts(raw["timestamp"]),
            source=stem.removesuffix("-outlier"),
            kind=kind,
            region=region,
            zone=zone,
            detail=f"{raw.get('type')} {raw.get('cluster_name')} {name}",
        )
    return None
