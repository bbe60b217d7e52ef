"""The one template of every Chaos Toolkit experiment this project writes: the shipped set
(experiments/make_experiments.py) and a game day's drills (`failover-drill gameday FILE
--chaostoolkit DIR`), so no two can drift apart."""

from __future__ import annotations

from typing import Any

MOD = "failover_drill.adapters.chaostoolkit"


def env(key: str, default: str) -> dict[str, str]:
    return {"type": "env", "key": key, "default": default}


def call(
    kind: str, name: str, func: str, module: str, arguments: dict[str, Any] | None = None, **extra: Any
) -> dict[str, Any]:
    provider: dict[str, Any] = {"type": "python", "module": f"{MOD}.{module}", "func": func}
    if arguments:
        provider["arguments"] = arguments
    return {"type": kind, "name": name, "provider": provider, **extra}


HYPOTHESIS = {
    "title": "Payments succeed within the SLO, stay fast, and the drill stays inside its error budget",
    # chaoslib stops at the first probe that misses its tolerance: payments come first, so a run
    # that also lost its success ratio still says whether money was lost or charged twice.
    "probes": [
        # A payment lost or charged twice is a failed experiment, whatever the success ratio says.
        call("probe", "payments-lost", "payments_lost", "probes", tolerance=0),
        call("probe", "payments-duplicated", "payments_duplicated", "probes", tolerance=0),
        call(
            "probe",
            "success-ratio",
            "success_ratio",
            "probes",
            {"window_s": 3},
            tolerance={"type": "range", "range": [0.999, 1.0]},
        ),
        call(
            "probe",
            "p99-latency-ms",
            "p99_latency_ms",
            "probes",
            {"window_s": 3},
            tolerance={"type": "range", "range": [0, 1000]},
        ),
        call(
            "probe",
            "error-budget-consumed-pct",
            "error_budget_consumed_pct",
            "probes",
            tolerance={"type": "range", "range": [0, 5]},
        ),
        # The drill's own verdict against the scenario's limits (failover time, failback, budget);
        # 'inconclusive: ...' (a starved load generator) deviates too, with its reason in the journal.
        call("probe", "drill-verdict", "drill_verdict", "probes", tolerance={"type": "regex", "pattern": "^passed"}),
    ],
}

CONFIG = {
    "failover_drill_platform": env("FAILOVER_DRILL_PLATFORM", "sandbox"),
    "failover_drill_region": env("FAILOVER_DRILL_REGION", "us-east1"),
    "failover_drill_rate": env("FAILOVER_DRILL_RATE", "200"),
    "failover_drill_mesh": env("FAILOVER_DRILL_MESH", ""),
    "failover_drill_topology": env("FAILOVER_DRILL_TOPOLOGY", ""),
    "failover_drill_state_dir": env("FAILOVER_DRILL_STATE", ".failover-drill"),
    "failover_drill_runs_dir": env("FAILOVER_DRILL_RUNS", "runs"),
}


def experiment(name: str, spec: dict[str, Any]) -> dict[str, Any]:
    exp: dict[str, Any] = {
        "version": "1.0.0",
        "title": spec["title"],
        "description": f"failover-drill {name}: open-loop payment traffic runs for the whole experiment "
        "(control); the fault is injected, observed, reverted; every number is also in "
        "runs/<id>/result.json. " + spec.get("note", ""),
        "tags": ["failover-drill", name],
        "configuration": CONFIG,
        "controls": [{"name": "failover-drill", "provider": {"type": "python", "module": f"{MOD}.control"}}],
        "steady-state-hypothesis": HYPOTHESIS,
        "method": [
            call(
                "action",
                f"inject-{name}",
                "inject_fault",
                "actions",
                spec["inject"],
                pauses={"after": spec["observe_s"]},
            ),
            call("probe", "time-to-detect", "time_to_detect", "probes"),
            call("probe", "failover-time", "failover_time", "probes"),
            call("action", f"revert-{name}", "revert_fault", "actions", pauses={"after": spec.get("settle_s", 8)}),
        ],
        "rollbacks": [call("action", "revert-every-fault", "revert_fault", "actions")],
    }
    return exp


def release_experiment(name: str, spec: dict[str, Any]) -> dict[str, Any]:
    """A release (`start_release`) instead of a fault: the same hypothesis, whose drill-verdict
    probe also checks the release's outcome; on kwok unless FAILOVER_DRILL_PLATFORM says kind."""
    exp = experiment(name, {**spec, "inject": {}, "observe_s": 0})
    exp["description"] = (
        f"failover-drill {name}: open-loop payment traffic runs for the whole experiment (control); a new "
        "payment-gateway version is rolled out by every region's Argo Rollouts controller, judged by the "
        "session's live SLIs, and followed until the controllers abort or promote it; the stable version "
        "is put back when the experiment ends. " + spec.get("note", "")
    )
    exp["tags"] = ["failover-drill", "argo-rollouts", name]
    exp["configuration"] = {**CONFIG, "failover_drill_platform": env("FAILOVER_DRILL_PLATFORM", "kwok")}
    exp["method"] = [
        call("action", f"release-{name}", "start_release", "actions", {"scenario": name},
             pauses={"after": spec["observe_s"]}),
        call("probe", "release-outcome", "release_outcome", "probes"),
    ]  # fmt: skip
    exp["rollbacks"] = []
    return exp


# What inject_fault takes (actions.py): a fault's schedule (at_s, duration_s) is the method's pauses.
INJECT_ARGUMENTS = ("kind", "target", "source", "mode", "delay_ms", "jitter_pct", "fail_pct", "cert", "ttl_s")


def drill_experiment(
    name: str,
    title: str,
    fault: dict[str, Any],
    *,
    observe_s: float,
    settle_s: float,
    platform: str,
    region: str,
    rate_rps: float,
) -> dict[str, Any]:
    """One drill of a game day as an experiment: its one fault, observed for its fault phase and
    settled for its recovery phase, on the day's platform and the drill's region and rate (each
    still overridable by the same environment variables as the shipped experiments)."""
    inject = {k: v for k, v in fault.items() if k in INJECT_ARGUMENTS and v is not None}
    exp = experiment(
        name,
        {
            "title": title,
            "inject": inject,
            "observe_s": observe_s,
            "settle_s": settle_s,
            "note": "Written from a game-day file: the room's checkpoints are asked by `failover-drill gameday`, "
            "not here.",
        },
    )
    config = dict(CONFIG)
    config["failover_drill_platform"] = env("FAILOVER_DRILL_PLATFORM", platform)
    config["failover_drill_region"] = env("FAILOVER_DRILL_REGION", region)
    config["failover_drill_rate"] = env("FAILOVER_DRILL_RATE", f"{rate_rps:g}")
    exp["configuration"] = config
    return exp
