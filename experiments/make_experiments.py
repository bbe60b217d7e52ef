"""Writes experiments/*.json and experiments/rollouts/*.json (kept in git) from the package's one template
(failover_drill/adapters/chaostoolkit/experiment_set.py), so the five experiments cannot drift
apart. Run after changing either: python experiments/make_experiments.py"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from failover_drill.adapters.chaostoolkit.experiment_set import experiment, release_experiment

EXPERIMENTS: dict[str, dict[str, Any]] = {
    "region-loss": {
        "title": "Losing the users' region fails over to the next region and back",
        "inject": {"kind": "region-loss", "target": "${failover_drill_region}"},
        "observe_s": 10,
    },
    "zone-loss": {
        "title": "Losing a zone of the users' region keeps payments flowing",
        "inject": {"kind": "zone-loss"},
        "observe_s": 20,
        "note": "With Istio as shipped (MESH unset) readiness needs ~15 s to drop the zone; the "
        "hypothesis after the method checks that payments recovered once it is back.",
    },
    "link-latency": {
        "title": "200 ms more between every caller and the users' region stays inside the p99 budget",
        "inject": {"kind": "link-latency", "target": "${failover_drill_region}", "delay_ms": 200},
        "observe_s": 6,
    },
    "partition": {
        "title": "The front door cut off from the users' region: health checks time out and traffic moves",
        "inject": {"kind": "partition", "source": "front-door", "target": "${failover_drill_region}"},
        "observe_s": 12,
    },
    "cert-expiry": {
        "title": "An expired gateway certificate is rejected by real TLS validation and traffic fails over",
        "inject": {"kind": "cert-expiry", "target": "${failover_drill_region}", "cert": "leaf"},
        "observe_s": 10,
    },
}


# experiments/rollouts/: releases through Argo Rollouts, for kwok and kind (not the sandbox).
RELEASES: dict[str, dict[str, Any]] = {
    "bad-canary": {
        "title": "A canary that fails 60% of its payments is aborted by analysis before it costs the budget",
        "observe_s": 45,
    },
    "good-canary": {
        "title": "A healthy canary passes analysis on the live SLIs and is promoted to every pod",
        "observe_s": 60,
    },
}


def main() -> None:
    here = Path(__file__).parent
    for name, spec in EXPERIMENTS.items():
        (here / f"{name}.json").write_text(json.dumps(experiment(name, spec), indent=2) + "\n")
    (here / "rollouts").mkdir(exist_ok=True)
    for name, spec in RELEASES.items():
        (here / "rollouts" / f"{name}.json").write_text(json.dumps(release_experiment(name, spec), indent=2) + "\n")


if __name__ == "__main__":
    main()
