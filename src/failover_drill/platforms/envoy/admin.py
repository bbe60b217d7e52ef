"""Tiny blocking HTTP helpers for Envoy admin and replica control endpoints (loopback only)."""

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
    """cluster -> host -> health_flags, from the admin /clusters text output."""
    _, text = request(f"http://127.0.0.1:{admin_port}/clusters", timeout=timeout)
    out: dict[str, dict[str, str]] = {}
    for line in text.splitlines():
        parts = line.split("::")
        if len(parts) >= 4 and parts[2] == "health_flags":
            out.setdefault(parts[0], {})[parts[1]] = parts[3]
    return out


def stats(admin_port: int, filter_re: str, timeout: float = 2.0) -> dict[str, int]:
    _, text = request(f"http://127.0.0.1:{admin_port}/stats?filter={urllib.parse.quote(filter_re)}", timeout=timeout)
    out = {}
    for line in text.splitlines():
        name, _, value = line.partition(": ")
        if value.strip().lstrip("-").isdigit():
            out[name] = int(value)
    return out
