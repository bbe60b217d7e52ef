"""The prometheus AnalysisTemplate's queries, asked of a real Prometheus server (the pinned Debian
build, measure/prometheus.py) that scrapes the drill's live SLI endpoint: every query returns the
series the drill computed, and every metric family of the SLI contract (config/sli_contract.py)
reaches Prometheus with exactly its labels. The static check of templates
(config/analysis_templates.py) is held here to what a real server answers.
(tests/test_kwok_rollouts.py runs the same template with the real controller.)"""

from __future__ import annotations

import os
import re
import shutil
from pathlib import Path
from typing import Any

import pytest

from failover_drill.config.analysis_templates import check_template, load_rollout_manifests, rollouts_dir
from failover_drill.config.sli_contract import METRICS
from failover_drill.config.topology import load_topology
from failover_drill.errors import ConfigError, PlatformError
from failover_drill.measure.live_sli import WINDOWS_S, LiveSli, SliServer
from failover_drill.measure.prometheus import PrometheusServer
from failover_drill.traffic.samples import OK, Sample
from tests.conftest import ROOT, processes_under

pytestmark = pytest.mark.skipif(
    not os.environ.get("FAILOVER_DRILL_PROMETHEUS") and not (shutil.which("apt-get") and shutil.which("dpkg-deb")),
    reason="Prometheus is fetched with apt-get download and dpkg-deb (or set FAILOVER_DRILL_PROMETHEUS)",
)

REGION = "us-east1"
_ARG = re.compile(r"\{\{\s*args\.([A-Za-z0-9_-]+)\s*\}\}")
_FIGURE = {"failover_drill_success_ratio": "success_ratio", "failover_drill_burn_rate": "burn_rate"}


def sample(ok: bool, version: str) -> Sample:
    return Sample(0, 0.0, 12.0, 0.0, 200 if ok else 503, OK if ok else "http_503", REGION, "a", version=version)


def resolved(template: dict[str, Any], values: dict[str, str]) -> list[tuple[str, str, str]]:
    """(metric name, address, query) of each prometheus metric, its {{args.x}} filled as the
    controller fills them: the given values, else the template's defaults."""
    args = {a["name"]: a.get("value") for a in template["spec"].get("args") or []}
    args.update(values)

    def fill(text: str) -> str:
        return _ARG.sub(lambda m: str(args[m.group(1)]), text)

    return [
        (m["name"], fill(m["provider"]["prometheus"]["address"]), fill(m["provider"]["prometheus"]["query"]))
        for m in template["spec"]["metrics"]
        if "prometheus" in m["provider"]
    ]


def test_the_templates_queries_read_the_drills_slis_through_a_real_prometheus(tmp_path: Path) -> None:
    live = LiveSli(slo=0.999, clock=lambda: 1000.0)  # a still clock: the figures do not slide
    for i in range(100):
        live.add(sample(True, "stable"))
        live.add(sample(i >= 5, "canary"))  # the canary fails 5%
    manifests = load_rollout_manifests(rollouts_dir(load_topology(ROOT / "clusters" / "topology.yaml")))
    templates = [t for t in manifests.templates() if resolved(t, {"prometheus-url": "", "region": REGION})]
    assert [t["metadata"]["name"] for t in templates] == ["payment-gateway-canary-prometheus"]
    home = tmp_path / "prometheus"
    with SliServer(live) as sli, PrometheusServer(home, [sli.url]) as prom:
        prom.wait_scraped()
        asked = []
        for t in templates:
            for name, address, query in resolved(t, {"prometheus-url": prom.url, "region": REGION}):
                assert address == prom.url
                got = prom.query(query)
                window = re.search(r'window="([^"]+)"', query)
                version = re.search(r'version="([^"]+)"', query)
                assert window and version, query
                want = getattr(
                    live.sli(REGION, version.group(1), WINDOWS_S[window.group(1)]), _FIGURE[query.split("{")[0]]
                )
                # One series, the figure the drill computed (the provider's result[0]).
                assert len(got) == 1 and got[0][1] == pytest.approx(want), (name, query, got, want)
                asked.append((name, got[0][1]))
        # Every family of the contract reaches Prometheus with the contract's labels and no others.
        for family, labels in METRICS.items():
            series = prom.query(f'{{__name__="{family}"}}')
            assert series, family
            for lv, _ in series:
                assert set(lv) - {"__name__", "job", "instance"} == labels, (family, lv)
        # A name the endpoint does not serve is an empty answer to Prometheus, not an error: the
        # controller would only see no data. The static check refuses it before anything runs.
        typo = 'failover_drill_sucess_ratio{region="us-east1",version="canary",window="1m"}'
        assert prom.query(typo) == []
        broken = {
            "metadata": {"name": "typo"},
            "spec": {"metrics": [{"name": "m", "provider": {"prometheus": {"address": prom.url, "query": typo}}}]},
        }
        with pytest.raises(
            ConfigError, match="failover_drill_sucess_ratio, which the drill's /metrics does not export"
        ):
            check_template(broken, "inline")
    assert sorted(asked) == [("canary-burn-rate", pytest.approx(50.0)), ("canary-success-ratio", pytest.approx(0.95))]
    assert processes_under(home) == []


def test_a_prometheus_that_does_not_start_says_so_and_leaves_nothing(tmp_path: Path) -> None:
    fake = tmp_path / "prometheus"
    fake.write_text("#!/bin/sh\necho 'err=\"opening storage failed\"' >&2\nexit 1\n")
    fake.chmod(0o755)
    home = tmp_path / "home"
    server = PrometheusServer(home, ["http://127.0.0.1:9"], binary=fake)
    with pytest.raises(PlatformError, match='Prometheus exited at start: err="opening storage failed"'):
        server.start()
    assert server.spec is None and processes_under(home) == []
    with pytest.raises(ValueError, match="is not http://HOST:PORT"):
        PrometheusServer(home, ["ftp://127.0.0.1:9"]).config()
