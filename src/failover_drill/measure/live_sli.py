"""Live SLIs while a drill runs, for the rollout controllers' analysis (issue 14).

Every completed sample is counted per region and per version (the replica's x-served-version:
stable / canary; "unknown" when no replica answered, e.g. a gateway's own 503) in one-second
buckets on this process's monotonic clock. From them, for any window: success ratio, burn rate
(error ratio / (1 - SLO)), the p99 latency of successful requests, and the page alert of the SRE
workbook (burn rate >= 14.4 over both 1 h and 5 min). A window's burn rate counts what it has, as
Prometheus would over a young series; the page alert judges as the report does (measure/budget.py):
the part of a window older than the drill counts as clean traffic at the observed rate, as a
production service's history would be, so the alert a drill acts on (--freeze-deploys) and the one
its scorecard reports agree. The failover state (phase, faults in force) comes from the drill.

Served over HTTP by `SliServer`: `/metrics` in the Prometheus text format (prometheus-client; for
Argo Rollouts' prometheus provider and anything that scrapes) and `/analysis` as JSON (for the web
provider): `/analysis?region=us-east1&version=canary&window=1m`.
"""

from __future__ import annotations

import bisect
import json
import math
import re
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from failover_drill.errors import PortInUse
from failover_drill.traffic.samples import DROPPED, Sample

ALL = "all"
UNKNOWN_VERSION = "unknown"
# The SRE workbook's multiwindow alerts: page at 14.4x over 1 h and 5 min, 6x over 6 h and 30 min.
WINDOWS_S: dict[str, float] = {"1m": 60.0, "5m": 300.0, "30m": 1800.0, "1h": 3600.0, "6h": 21600.0}
PAGE_BURN = 14.4
PAGE_WINDOWS = ("1h", "5m")
KEEP_S = 21600
# Latency buckets for p99: 1 ms to ~60 s, 5% apart (a p99 within 5% of the true value).
_EDGES_MS = [1.0 * 1.05**i for i in range(230)]


def parse_window(text: str) -> float:
    """'30s', '5m', '1h' -> seconds; ValueError otherwise."""
    m = re.fullmatch(r"(\d+(?:\.\d+)?)(s|m|h)", text.strip())
    if not m:
        raise ValueError(f"window {text[:20]!r} is not a duration like 30s, 5m or 1h")
    value = float(m.group(1)) * {"s": 1, "m": 60, "h": 3600}[m.group(2)]
    if not 0 < value <= KEEP_S:
        raise ValueError(f"window {text[:20]!r} must be more than 0 and at most 6h")
    return value


@dataclass
class _Bucket:
    sec: int
    total: int = 0
    ok: int = 0
    lat: dict[int, int] = field(default_factory=dict)  # latency bucket index -> successful requests


@dataclass(frozen=True)
class Sli:
    region: str
    version: str
    window_s: float
    requests: int
    errors: int
    success_ratio: float | None  # None when nothing completed in the window
    burn_rate: float | None
    p99_ms: float | None  # of successful requests

    def to_json(self) -> dict[str, Any]:
        return {
            "region": self.region,
            "version": self.version,
            "window_s": self.window_s,
            "requests": self.requests,
            "errors": self.errors,
            "success_ratio": self.success_ratio,
            "burn_rate": self.burn_rate,
            "p99_ms": self.p99_ms,
        }


class LiveSli:
    """Thread-safe: the drill adds samples from its event loop, the HTTP server reads from its threads."""

    def __init__(self, slo: float = 0.999, clock: Callable[[], float] = time.monotonic) -> None:
        if not 0 < slo < 1:
            raise ValueError("slo must be between 0 and 1")
        self.slo = slo
        self.clock = clock
        self._lock = threading.Lock()
        self._series: dict[tuple[str, str], deque[_Bucket]] = {}
        self._failover: dict[str, Any] = {"phase": "idle", "faults": []}

    # -- input ----------------------------------------------------------------------------------
    def add(self, s: Sample) -> None:
        if s.err == DROPPED:  # never sent: the generator's failure, not the service's
            return
        sec = int(self.clock())
        ok = s.ok
        idx = bisect.bisect_left(_EDGES_MS, max(s.lat_ms, 0.0)) if ok else -1
        region = s.region or UNKNOWN_VERSION
        version = s.version or UNKNOWN_VERSION
        with self._lock:
            for key in {(region, version), (region, ALL), (ALL, version), (ALL, ALL)}:
                series = self._series.setdefault(key, deque())
                if not series or series[-1].sec != sec:
                    series.append(_Bucket(sec))
                    while series and series[0].sec < sec - KEEP_S:
                        series.popleft()
                b = series[-1]
                b.total += 1
                if ok:
                    b.ok += 1
                    b.lat[idx] = b.lat.get(idx, 0) + 1

    def set_failover(self, phase: str, faults: list[str]) -> None:
        with self._lock:
            self._failover = {"phase": phase, "faults": list(faults), "since_s": round(self.clock(), 3)}

    # -- output ---------------------------------------------------------------------------------
    def series(self) -> list[tuple[str, str]]:
        with self._lock:
            return sorted(self._series)

    def sli(self, region: str, version: str, window_s: float) -> Sli:
        now = int(self.clock())
        total = ok = 0
        lat: dict[int, int] = {}
        with self._lock:
            for b in reversed(self._series.get((region, version), ())):
                if b.sec <= now - window_s:
                    break
                total += b.total
                ok += b.ok
                for i, n in b.lat.items():
                    lat[i] = lat.get(i, 0) + n
        ratio = ok / total if total else None
        burn = (1 - ratio) / (1 - self.slo) if ratio is not None else None
        return Sli(region, version, window_s, total, total - ok, ratio, burn, _p99(lat))

    def observed_s(self, region: str = ALL, version: str = ALL) -> float:
        """How long the series has been counted (whole seconds, at least 1)."""
        with self._lock:
            series = self._series.get((region, version))
            first = series[0].sec if series else None
        return 0.0 if first is None else float(max(1, int(self.clock()) - first + 1))

    def page_alert(self, region: str = ALL) -> bool:
        observed = self.observed_s(region)
        for w in PAGE_WINDOWS:
            window = WINDOWS_S[w]
            s = self.sli(region, ALL, window)
            if not s.requests:
                return False
            # The unobserved rest of the window: clean, at the rate observed (the report's rule).
            expected = s.requests * window / min(window, observed)
            if s.errors / expected / (1 - self.slo) < PAGE_BURN:
                return False
        return True

    def failover(self) -> dict[str, Any]:
        with self._lock:
            out = dict(self._failover)
        out["page_alert"] = self.page_alert()
        return out

    def analysis(self, region: str, version: str, window_s: float) -> dict[str, Any]:
        out = self.sli(region, version, window_s).to_json()
        out["slo"] = self.slo
        out["page_alert"] = self.page_alert(region)
        out["failover"] = self.failover()
        return out


def _p99(lat: dict[int, int]) -> float | None:
    n = sum(lat.values())
    if not n:
        return None
    rank = math.ceil(0.99 * n)
    seen = 0
    for i in sorted(lat):
        seen += lat[i]
        if seen >= rank:
            return round(_EDGES_MS[min(i, len(_EDGES_MS) - 1)], 3)
    return None  # pragma: no cover


class _Collector(Collector):
    def __init__(self, live: LiveSli) -> None:
        self.live = live

    def collect(self) -> Iterator[Metric]:
        labels = ["region", "version", "window"]
        ratio = GaugeMetricFamily("failover_drill_success_ratio", "Share of payments that succeeded", labels=labels)
        burn = GaugeMetricFamily("failover_drill_burn_rate", "Error ratio / (1 - SLO)", labels=labels)
        p99 = GaugeMetricFamily(
            "failover_drill_latency_p99_seconds", "p99 latency of successful payments", labels=labels
        )
        reqs = GaugeMetricFamily("failover_drill_requests", "Payments completed in the window", labels=labels)
        for region, version in self.live.series():
            for w, secs in WINDOWS_S.items():
                s = self.live.sli(region, version, secs)
                lv = [region, version, w]
                reqs.add_metric(lv, s.requests)
                if s.success_ratio is not None and s.burn_rate is not None:
                    ratio.add_metric(lv, s.success_ratio)
                    burn.add_metric(lv, s.burn_rate)
                if s.p99_ms is not None:
                    p99.add_metric(lv, s.p99_ms / 1000)
        yield from (ratio, burn, p99, reqs)
        fo = self.live.failover()
        phase = GaugeMetricFamily("failover_drill_phase", "The drill's phase (1 for the current one)", labels=["phase"])
        phase.add_metric([str(fo["phase"])], 1)
        yield phase
        faults = GaugeMetricFamily("failover_drill_faults_active", "Faults in force")
        faults.add_metric([], len(fo["faults"]))
        yield faults
        page = GaugeMetricFamily(
            "failover_drill_page_alert", "1 while burn rate >= 14.4 over both 1h and 5m", labels=["region"]
        )
        for region in sorted({r for r, _ in self.live.series()}):
            page.add_metric([region], 1 if self.live.page_alert(region) else 0)
        yield page


class SliServer:
    """/metrics, /analysis and /healthz on host:port (port 0: any free one; see .port)."""

    def __init__(self, live: LiveSli, host: str = "127.0.0.1", port: int = 0) -> None:
        self.live = live
        self.registry = CollectorRegistry()
        self.registry.register(_Collector(live))
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:
                pass

            def do_GET(self) -> None:
                url = urlsplit(self.path)
                if url.path == "/metrics":
                    self._send(200, generate_latest(server.registry), "text/plain; version=0.0.4; charset=utf-8")
                elif url.path == "/analysis":
                    code, payload = server.analysis(parse_qs(url.query))
                    self._send(code, json.dumps(payload).encode(), "application/json")
                elif url.path == "/healthz":
                    self._send(200, b"ok", "text/plain")
                else:
                    self._send(404, b'{"error": "not found: /metrics, /analysis, /healthz"}', "application/json")

            def _send(self, code: int, body: bytes, ctype: str) -> None:
                self.send_response(code)
                self.send_header("content-type", ctype)
                self.send_header("content-length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        self.httpd = ThreadingHTTPServer((host, port), Handler)
        self.httpd.daemon_threads = True
        self.host = host
        self.port = int(self.httpd.server_address[1])
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def analysis(self, query: dict[str, list[str]]) -> tuple[int, dict[str, Any]]:
        region = (query.get("region") or [ALL])[0]
        version = (query.get("version") or [ALL])[0]
        try:
            window_s = parse_window((query.get("window") or ["1m"])[0])
        except ValueError as exc:
            return 400, {"error": str(exc)}
        known = self.live.series()
        if (region, version) not in known and (region, version) != (ALL, ALL):
            # A series never seen has no ratio to give: answering 200 with nulls made a typo in a
            # template's region or version look like a quiet canary. A 404 is an Error measurement
            # in the controller (inconclusive, never a pass), and says to a person what exists.
            return 404, {
                "error": f"no payments seen for region={region[:40]} version={version[:40]}",
                "regions_seen": sorted({r for r, _ in known}),
                "versions_seen": sorted({v for _, v in known}),
                "requests": 0,
            }
        return 200, self.live.analysis(region, version, window_s)

    def start(self) -> SliServer:
        self._thread = threading.Thread(target=self.httpd.serve_forever, name="sli-server", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def __enter__(self) -> SliServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def bound_server(sli: LiveSli, host: str, port: int) -> SliServer:
    """An SliServer bound now, so a taken port fails before any fleet or fault: PortInUse says
    which address and what to do."""
    try:
        return SliServer(sli, host=host, port=port)
    except OSError as exc:
        raise PortInUse(
            f"cannot serve live SLIs on {host}:{port}: {exc.strerror or exc}",
            hint="choose another --sli-port (0 picks a free one) or stop what listens there",
        ) from None
