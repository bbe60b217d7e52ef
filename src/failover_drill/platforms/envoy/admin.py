"""Tiny blocking HTTP helpers for Envoy admin and replica control endpoints (loopback only).

urllib rather than httpx: these are one-shot loopback calls from readiness polls and fault
handlers, often from threads beside the traffic's event loop; a client per call buys nothing,
and Envoy's answers are read as JSON (?format=json), never parsed from its text output."""

from __future__ import annotations

import json
import urllib.error
import urllib.parse
import urllib.request
from typing import Any


def request(
    url: str, *, method: str = "GET", body: dict[str, Any] | None = None, timeout: float = 2.0
) -> tuple[int, str]:
    data = json.dumps(body).encode() if body is not None else (b"" if method == "POST" else None)
    req = urllib.request.Request(url, data=data, method=method)
    if body is not None:
        req.add_header("content-type", "application/json")
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            return resp.status, resp.read().decode(errors="replace")
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode(errors="replace")


def runtime_modify(admin_port: int, values: dict[str, Any], timeout: float = 2.0) -> None:
    query = urllib.parse.urlencode({k: str(v) for k, v in values.items()})
    status, text = request(f"http://127.0.0.1:{admin_port}/runtime_modify?{query}", method="POST", timeout=timeout)
    if status != 200:
        raise OSError(f"runtime_modify on admin port {admin_port} answered {status}: {text.strip()[:200]}")


def cluster_hosts(admin_port: int, timeout: float = 2.0) -> dict[str, dict[str, str]]:
    """cluster -> "host:port" -> "healthy", or the host's failure flags joined with "/" (e.g.
    "failed_outlier_check/eds_unhealthy"), from Envoy's JSON /clusters output."""
    out: dict[str, dict[str, str]] = {}
    for cluster in _json(admin_port, "/clusters?format=json", timeout).get("cluster_statuses", []):
        hosts = out.setdefault(cluster["name"], {})
        for host in cluster.get("host_statuses", []):
            sock = host.get("address", {}).get("socket_address", {})
            hosts[f"{sock.get('address')}:{sock.get('port_value')}"] = _health_flags(host.get("health_status", {}))
    return out


def _health_flags(health: dict[str, Any]) -> str:
    # Envoy treats an EDS status of UNKNOWN (or none) as healthy, as its text output does.
    flags = sorted(k for k, v in health.items() if v is True)
    eds = health.get("eds_health_status")
    if eds not in (None, "HEALTHY", "UNKNOWN"):
        flags.append(f"eds_{str(eds).lower()}")
    return "/".join(flags) or "healthy"


def stats(admin_port: int, filter_re: str, timeout: float = 2.0) -> dict[str, int]:
    """Counter and gauge values whose names match filter_re, from Envoy's JSON /stats output."""
    query = urllib.parse.urlencode({"format": "json", "filter": filter_re})
    found = _json(admin_port, f"/stats?{query}", timeout).get("stats", [])
    return {s["name"]: int(s["value"]) for s in found if isinstance(s.get("value"), int)}


def _json(admin_port: int, path: str, timeout: float) -> dict[str, Any]:
    """An admin endpoint's JSON; an answer that is not (an admin still starting) is an OSError,
    as a refused connection is, so that polls keep polling."""
    status, text = request(f"http://127.0.0.1:{admin_port}{path}", timeout=timeout)
    try:
        data = json.loads(text)
    except ValueError:
        raise OSError(f"admin {path} on port {admin_port} answered {status}: {text.strip()[:120]!r}") from None
    if not isinstance(data, dict):
        raise OSError(f"admin {path} on port {admin_port} answered {status} with {type(data).__name__}")
    return data
