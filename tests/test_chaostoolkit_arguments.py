"""Chaos Toolkit argument values are checked before the experiment starts (issue 16, point 5): a
misspelt value aborts the run naming the activity, the argument and what is allowed, instead of a
run that injected nothing and ended "completed, deviated false"."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from chaoslib.configuration import load_configuration
from chaoslib.loader import load_experiment
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from failover_drill.adapters.chaostoolkit.validation import problems
from failover_drill.faults.ledger import FaultLedger
from failover_drill.recovery import ledger_path
from tests.conftest import ROOT, Fleet, assert_healthy, topology

EXPERIMENTS = sorted((ROOT / "experiments").glob("*.json")) + sorted((ROOT / "experiments" / "rollouts").glob("*.json"))
CHAOS = Path(sys.executable).parent / "chaos"


@pytest.mark.parametrize("path", EXPERIMENTS, ids=[p.stem for p in EXPERIMENTS])
def test_the_shipped_experiments_pass_the_check(path: Path) -> None:
    exp = load_experiment(str(path))
    assert problems(exp, load_configuration(exp["configuration"]), None, topology(), "us-east1") == []


def test_a_misspelt_release_scenario_is_named_before_anything_runs() -> None:
    exp = load_experiment(str(ROOT / "experiments" / "rollouts" / "bad-canary.json"))
    exp["method"][0]["provider"]["arguments"]["scenario"] = "bad-canery"
    assert problems(exp, {}, None, topology(), "us-east1") == [
        "'release-bad-canary': argument 'scenario' is 'bad-canery': Input should be 'bad-canary' or 'good-canary'"
    ]


def test_each_bad_value_is_named_with_its_activity_and_what_is_allowed() -> None:
    exp = load_experiment(str(ROOT / "experiments" / "zone-loss.json"))
    exp["method"][0]["provider"]["arguments"].update(mode="frezee")
    (ratio,) = [p for p in exp["steady-state-hypothesis"]["probes"] if p["name"] == "success-ratio"]
    ratio["provider"]["arguments"]["window_s"] = "three"
    exp["rollbacks"] = [
        {
            "type": "action",
            "name": "undo",
            "provider": {
                "type": "python",
                "module": "failover_drill.adapters.chaostoolkit.actions",
                "func": "revert_fault",
                "arguments": {"kind": "zone-los"},
            },
        }
    ]
    found = problems(exp, {}, None, topology(), "us-east1")
    assert found == [
        "'success-ratio': argument 'window_s' is 'three': Input should be a valid number, unable to parse string as a number",
        "'inject-zone-loss': argument 'mode' is 'frezee': Input should be 'kill' or 'freeze'",
        "'undo': argument 'kind' is 'zone-los': choose one of region-loss, zone-loss, link-latency, partition, "
        "brownout, control-plane-loss, blackout, cert-expiry, lost-response",
    ]
    # Names the topology does not know, checked as the session will check them.
    exp["method"][0]["provider"]["arguments"].update(mode="freeze", target="us-east-1a")
    assert "argument 'target' is 'us-east-1a': unknown zone" in problems(exp, {}, None, topology(), "us-east1")[1]
    # ${...} values are judged as chaoslib will fill them in from the configuration.
    exp["method"][0]["provider"]["arguments"].update(target="${zone}")
    assert len(problems(exp, {"zone": "us-east1-b"}, None, topology(), "us-east1")) == 2


@pytest.mark.slow
def test_a_misspelt_value_aborts_chaos_run_before_anything_is_injected(fleet: Fleet, tmp_path: Path) -> None:
    fleet.platform.wait_steady("us-east1")
    exp = json.loads((ROOT / "experiments" / "zone-loss.json").read_text())
    exp["method"][0]["provider"]["arguments"]["mode"] = "frezee"
    path = tmp_path / "zone-loss-typo.json"
    path.write_text(json.dumps(exp))
    ledger = FaultLedger(ledger_path(fleet.state))
    assert ledger.open_entries() == []
    before = ledger_path(fleet.state).read_text()
    runs = tmp_path / "runs"
    env = {**os.environ, "FAILOVER_DRILL_STATE": str(fleet.state), "FAILOVER_DRILL_RUNS": str(runs)}
    journal_path = tmp_path / "journal.json"
    out = subprocess.run(
        [str(CHAOS), "--no-log-file", "run", "--journal-path", str(journal_path), str(path)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
    text = out.stdout + out.stderr
    journal = json.loads(journal_path.read_text())
    assert journal["status"] == "interrupted" and journal["run"] == [], text[-3000:]
    assert journal["deviated"] is False and "failover_drill" not in journal
    assert out.returncode != 0
    assert "'inject-zone-loss': argument 'mode' is 'frezee': Input should be 'kill' or 'freeze'" in text, text[-3000:]
    # Nothing ran: no fault in the ledger, no traffic (no run directory), the fleet untouched.
    assert ledger_path(fleet.state).read_text() == before
    assert not runs.exists() or not any(runs.iterdir())
    assert_healthy(fleet)


def test_a_release_experiment_on_the_sandbox_is_refused_before_anything_starts(tmp_path: Path) -> None:
    """Rollouts asked of the sandbox (issue 14's bad input): the control interrupts the run with
    the reason before traffic; no fleet comes up."""
    state, runs = tmp_path / "state", tmp_path / "runs"
    env = {**os.environ, "FAILOVER_DRILL_STATE": str(state), "FAILOVER_DRILL_RUNS": str(runs),
           "FAILOVER_DRILL_PLATFORM": "sandbox"}  # fmt: skip
    journal_path = tmp_path / "journal.json"
    out = subprocess.run(
        [str(CHAOS), "--no-log-file", "run", "--journal-path", str(journal_path),
         str(ROOT / "experiments" / "rollouts" / "bad-canary.json")],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=180, check=False,
    )  # fmt: skip
    text = out.stdout + out.stderr
    journal = json.loads(journal_path.read_text())
    assert journal["status"] == "interrupted" and journal["run"] == [], text[-3000:]
    assert "Argo Rollouts needs a Kubernetes API, and the sandbox has none" in text, text[-3000:]
    assert out.returncode != 0
    assert not (state / "sandbox" / "fleet.json").exists() and (not runs.exists() or not any(runs.iterdir()))


_values = st.recursive(
    st.none() | st.booleans() | st.floats() | st.integers() | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=10), inner, max_size=3),
    max_leaves=12,
)
_modules = st.sampled_from(
    [
        "failover_drill.adapters.chaostoolkit.actions",
        "failover_drill.adapters.chaostoolkit.probes",
        "failover_drill.adapters.chaostoolkit.nothing",
        "os",
    ]
)
_funcs = st.sampled_from(["inject_fault", "revert_fault", "success_ratio", "fleet_up", "summary", "path"]) | _values
_arguments = (
    st.dictionaries(
        st.sampled_from(["kind", "target", "source", "mode", "delay_ms", "jitter_pct", "window_s", "cert", "x"]),
        st.sampled_from(["zone-loss", "link-latency", "us-east1", "us-east1-a", "freeze", "${zone}"]) | _values,
        max_size=5,
    )
    | _values
)
_activity = st.fixed_dictionaries(
    {"name": _values},
    optional={
        "provider": st.fixed_dictionaries(
            {"type": st.just("python") | _values, "module": _modules | _values, "func": _funcs, "arguments": _arguments}
        )
        | _values
    },
)
_experiments = st.fixed_dictionaries(
    {},
    optional={
        "method": st.lists(_activity, max_size=3) | _values,
        "rollbacks": st.lists(_activity, max_size=2) | _values,
        "steady-state-hypothesis": st.fixed_dictionaries({"probes": st.lists(_activity, max_size=2) | _values})
        | _values,
    },
)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_experiments | _values, st.dictionaries(st.text(max_size=8), _values, max_size=3))
def test_any_experiment_shape_gives_a_list_of_problems_never_an_exception(exp: Any, config: dict[str, Any]) -> None:
    found = problems(exp, config, None, topology(), "us-east1")
    assert isinstance(found, list) and all(isinstance(p, str) and len(p) < 2000 for p in found)
