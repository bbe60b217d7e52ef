"""A Prometheus server of our own that scrapes the drill's live SLIs (live_sli.SliServer's /metrics),
for Argo Rollouts' prometheus provider: the provider speaks Prometheus' query API
(/api/v1/query), which only a real server answers, not the exposition format /metrics serves.

The binary is the pinned Debian build (toolchain/debs.py: fetched into the cache on first use, or
$FAILOVER_DRILL_PROMETHEUS). The server listens on 127.0.0.1 at a port from the project's
allocator (platforms/ports.py), keeps its config, data and log under the folder it is given,
scrapes every second, and carries that folder as its fleet mark (platforms/processes.py), so
whatever looks for a state dir's processes finds it. Whoever starts it stops it (`with`, or
stop()); stop() is safe to call twice. On the kwok platform the rollout controllers run in the same
network namespace as the tool (as root: the host's; without root: the fleet's own, which the tool
enters first), so 127.0.0.1 reaches them as it does for the web provider's /analysis. Fetch the
binary before entering a rootless fleet's namespace: it has no network.
"""

from __future__ import annotations

import contextlib
import json
import shutil
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import yaml

from failover_drill import obs
from failover_drill.errors import PlatformError
from failover_drill.platforms import processes as procs
from failover_drill.platforms.polling import wait_until
from failover_drill.platforms.ports import allocate
from failover_drill.toolchain.debs import resolve_binary

log = obs.get(__name__)

JOB = "failover-drill"
START_TIMEOUT_S = 30.0


class PrometheusServer:
    """`targets`: base URLs of /metrics endpoints (http://127.0.0.1:PORT), scraped every `scrape_s`."""

    def __init__(
        self,
        home: Path,
        targets: list[str],
        *,
        scrape_s: float = 1.0,
        host: str = "127.0.0.1",
        port: int = 0,
        binary: Path | None = None,
    ) -> None:
        if not targets:
            raise ValueError("a Prometheus server needs at least one target to scrape")
        self.home = home.resolve()
        self.targets = list(targets)
        self.scrape_s = scrape_s
        self.host = host
        self.port = port
        self.binary = binary
        self.spec: procs.ProcSpec | None = None

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def config(self) -> dict[str, Any]:
        """prometheus.yml: one job per metrics path, scraping its targets every scrape_s."""
        by_path: dict[str, list[str]] = {}
        for t in self.targets:
            u = urllib.parse.urlsplit(t if "://" in t else f"http://{t}")
            if u.scheme != "http" or not u.hostname or not u.port:
                raise ValueError(f"scrape target {t!r} is not http://HOST:PORT[/path]")
            path = u.path if u.path not in ("", "/") else "/metrics"
            by_path.setdefault(path, []).append(f"{u.hostname}:{u.port}")
        every = f"{max(1, round(self.scrape_s * 1000))}ms"
        return {
            "global": {"scrape_interval": every, "scrape_timeout": every, "evaluation_interval": every},
            "scrape_configs": [
                {
                    "job_name": JOB if i == 0 else f"{JOB}-{i}",
                    "metrics_path": path,
                    "static_configs": [{"targets": hosts}],
                }
                for i, (path, hosts) in enumerate(sorted(by_path.items()))
            ],
        }

    def start(self) -> PrometheusServer:
        binary = self.binary or resolve_binary("prometheus")
        self.home.mkdir(parents=True, exist_ok=True)
        config = self.home / "prometheus.yml"
        config.write_text(yaml.safe_dump(self.config(), sort_keys=False))
        if not self.port:
            self.port = allocate(["prometheus"])["prometheus"]
        self.spec = procs.ProcSpec(
            name="prometheus",
            kind="prometheus",
            argv=[
                str(binary),
                f"--config.file={config}",
                f"--storage.tsdb.path={self.home / 'data'}",
                "--storage.tsdb.retention.time=1d",
                f"--web.listen-address={self.host}:{self.port}",
                "--log.level=warn",
            ],
            log=str(self.home / "prometheus.log"),
            port=self.port,
        )
        # One core's worth of Go threads at most: it shares the machine with the drill it watches.
        procs.spawn(self.spec, {"GOMAXPROCS": "1"}, fleet=self.home)
        try:
            self._wait_ready()
        except BaseException:
            self.stop()
            raise
        log.info("prometheus.started", url=self.url, targets=self.targets, pid=self.spec.pid)
        return self

    def _wait_ready(self, timeout_s: float = START_TIMEOUT_S) -> None:
        assert self.spec is not None
        spec = self.spec

        def not_ready() -> str | None:
            if not procs.alive(spec):
                raise PlatformError(
                    f"Prometheus exited at start: {procs.log_tail(spec.log) or 'no output'}",
                    hint=f"its log: {spec.log}",
                )
            try:
                with urllib.request.urlopen(f"{self.url}/-/ready", timeout=2) as r:
                    return None if r.status == 200 else f"/-/ready answered {r.status}"
            except OSError as exc:
                return str(exc)

        wait_until(
            not_ready,
            timeout_s,
            0.1,
            lambda last: PlatformError(
                f"Prometheus did not answer on {self.url} within {timeout_s:g} s ({last})", hint=f"its log: {spec.log}"
            ),
        )

    def stop(self) -> None:
        if self.spec is not None:
            left = procs.stop_all([self.spec], grace_s=5.0)
            if left:
                log.warning("prometheus.survived", pid=self.spec.pid)
            self.spec = None

    def __enter__(self) -> PrometheusServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- asking it, as the prometheus provider does ------------------------------------------------
    def query(self, promql: str) -> list[tuple[dict[str, str], float]]:
        """An instant query (/api/v1/query, evaluated now): each series' labels and value.
        PlatformError when Prometheus refuses the query (its own words)."""
        body = urllib.parse.urlencode({"query": promql}).encode()
        try:
            with urllib.request.urlopen(f"{self.url}/api/v1/query", data=body, timeout=10) as r:
                payload = json.loads(r.read())
        except urllib.error.HTTPError as exc:
            payload = json.loads(exc.read() or b"{}")
        except OSError as exc:
            raise PlatformError(f"Prometheus at {self.url} did not answer: {exc}") from None
        if payload.get("status") != "success":
            raise PlatformError(f"Prometheus refused {promql!r}: {payload.get('error', payload)}")
        data = payload["data"]
        if data["resultType"] == "scalar":
            return [({}, float(data["result"][1]))]
        if data["resultType"] != "vector":
            raise PlatformError(f"{promql!r} gave a {data['resultType']}, not an instant vector")
        return [(dict(s["metric"]), float(s["value"][1])) for s in data["result"]]

    def scraped(self) -> bool:
        """Every target answered its last scrape."""
        got = self.query(f'up{{job=~"{JOB}.*"}}')
        return len(got) == len(self.targets) and all(v == 1 for _, v in got)

    def wait_scraped(self, timeout_s: float = 15.0) -> None:
        wait_until(
            lambda: None if self.scraped() else "not yet",
            timeout_s,
            min(self.scrape_s, 0.5),
            lambda _: PlatformError(
                f"Prometheus at {self.url} has not scraped {', '.join(self.targets)} within {timeout_s:g} s",
                hint=f"{self.url}/targets shows why; its log: {self.home / 'prometheus.log'}",
            ),
        )


@contextlib.contextmanager
def scraping(sli_url: str, home: Path) -> Iterator[PrometheusServer]:
    """A drill's own Prometheus for its release's analysis: listening where its SLI endpoint
    listens (so whatever reaches one reaches the other), yielded once it has scraped /metrics,
    stopped and its data removed afterwards."""
    host = urllib.parse.urlsplit(sli_url).hostname or "127.0.0.1"
    try:
        with PrometheusServer(home, [sli_url], host=host) as prom:
            prom.wait_scraped()
            yield prom
    finally:
        shutil.rmtree(home, ignore_errors=True)
