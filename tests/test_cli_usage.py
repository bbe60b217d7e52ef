"""Usage mistakes through the installed entry point (.venv/bin/failover-drill): click's usage
message on stderr and exit 2, never a traceback (issue 15, point 1)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from failover_drill.faults.model import FAULT_KINDS
from tests.conftest import ROOT

ENTRY = Path(sys.executable).parent / "failover-drill"


def cli(*args: str, state: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "FAILOVER_DRILL_STATE": str(state)}
    return subprocess.run(
        [str(ENTRY), *args], capture_output=True, text=True, timeout=60, env=env, cwd=ROOT, check=False
    )


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (["--rate", "abc"], "No such option '--rate'"),
        (["drill", "--rate", "abc"], "'abc' is not a valid float"),
        (["drill", "--platfrm", "kind"], "No such option '--platfrm'"),
        (["dril"], "No such command 'dril'"),
        (["report"], "Missing argument 'RUN'"),
    ],
)
def test_a_usage_mistake_prints_clicks_usage_message_and_exits_2(args: list[str], says: str, tmp_path: Path) -> None:
    out = cli(*args, state=tmp_path / "state")
    assert out.returncode == 2, out.stderr
    assert "Traceback" not in out.stderr and "Traceback" not in out.stdout
    assert "Usage: failover-drill" in out.stderr
    assert says in out.stderr
    # one suggestion, not one from click and another from typer
    assert out.stderr.count("Did you mean") <= 1


def test_no_command_at_all_prints_the_usage_and_exits_2(tmp_path: Path) -> None:
    out = cli(state=tmp_path / "state")
    assert out.returncode == 2
    assert "Traceback" not in out.stderr + out.stdout
    assert "Usage: failover-drill" in out.stderr + out.stdout
    assert "drill" in out.stderr + out.stdout


def test_help_is_no_mistake(tmp_path: Path) -> None:
    out = cli("--help", state=tmp_path / "state")
    assert out.returncode == 0 and "Usage: failover-drill" in out.stdout


def _options(command: str) -> set[str]:
    import click
    import typer

    from failover_drill.cli import app

    group = typer.main.get_command(app)
    assert isinstance(group, click.Group)
    return {o for p in group.commands[command].params for o in p.opts}


def test_plan_accepts_every_option_that_defines_a_drill() -> None:
    """Only where the run's files go, whether the fleet stays up, whether its report has a plot,
    where live SLIs are served and whether it freezes deploys on its page alert are drill's own."""
    own = {"--runs-dir", "--keep-up", "--no-plot", "--sli-port", "--sli-host", "--freeze-deploys"}
    assert _options("drill") - _options("plan") == own


def test_plan_takes_drills_fault_parameters_rate_and_sets(tmp_path: Path) -> None:
    out = cli(
        "plan", "--fault", "link-latency", "--delay-ms", "50", "--jitter-pct", "10", "--rate", "300",
        "--set", "phases.fault_s=10", state=tmp_path / "state",
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    assert "300 req/s" in out.stdout and "fault 10s" in out.stdout
    assert "inject link-latency *->us-east1 (delay_ms 50, jitter_pct 10)" in out.stdout
    brownout = cli("plan", "--fault", "brownout", "--fail-pct", "30", state=tmp_path / "state")
    assert brownout.returncode == 0 and "(fail_pct 30, delay_ms 0)" in brownout.stdout


@pytest.mark.parametrize("command", ["up", "down", "status", "drill", "plan", "doctor"])
def test_only_platforms_that_exist_are_offered(command: str, tmp_path: Path) -> None:
    helptext = cli(command, "--help", state=tmp_path / "state").stdout
    assert "sandbox|kwok|kind" in helptext and "kube " not in helptext
    out = cli(command, "--platform", "kube", state=tmp_path / "state")
    assert out.returncode == 2 and "'kube' is not one of 'sandbox', 'kwok', 'kind'" in out.stderr


@pytest.mark.parametrize("kind", FAULT_KINDS)
def test_every_fault_kind_plans_with_no_other_argument(kind: str, tmp_path: Path) -> None:
    """`make drill FAULT=<kind>` passes nothing but the fault: each kind has defaults that make a
    drill (link-latency needed --delay-ms once). The plan names what the verdict will judge; a
    blackout (the stopwatch's calibration), lost answers and a brownout of a share of requests (no
    health check or outlier detector sees a share) leave nothing that can recover while they are on:
    not asked for a failover time, their own verdicts no longer fail by design."""
    out = cli("plan", "--fault", kind, state=tmp_path / "state")
    assert out.returncode == 0, out.stdout + out.stderr
    assert f"inject {kind}" in out.stdout
    limits = next(line for line in out.stdout.splitlines() if line.startswith("verdict limits:"))
    assert ("failover time" in limits) is (kind not in ("blackout", "lost-response", "brownout")), limits
    assert "payments lost <= 0" in limits


@pytest.mark.parametrize("args", [["status"], ["abort"], ["freeze"], ["thaw"], ["promote-full", "--rollout", "x"]])
def test_rollouts_on_the_sandbox_say_they_need_kubernetes_and_start_nothing(args: list[str], tmp_path: Path) -> None:
    """Issue 14: rollouts requested on the sandbox: one clear message, exit 2, nothing started."""
    state = tmp_path / "state"
    out = cli("rollouts", *args, state=state)
    assert out.returncode == 2, out.stdout + out.stderr
    assert out.stderr.count("error:") == 1 and "Traceback" not in out.stderr
    assert "[--platform]: Argo Rollouts needs a Kubernetes API, and the sandbox has none" in out.stderr
    assert "--platform kwok" in out.stderr
    assert not state.exists()


def test_rollouts_on_a_kwok_fleet_that_is_down_say_how_to_bring_it_up(tmp_path: Path) -> None:
    out = cli("rollouts", "status", "--platform", "kwok", state=tmp_path / "state")
    assert out.returncode != 0 and "the kwok fleet is down" in out.stderr, out.stderr
    assert "failover-drill up --platform kwok" in out.stderr


@pytest.mark.parametrize("command", ["drill", "plan"])
def test_a_release_on_the_sandbox_or_an_unknown_one_stops_before_anything_starts(command: str, tmp_path: Path) -> None:
    """Issue 14's bad input: rollouts asked of the sandbox, and an unknown rollout scenario: one
    clear message, exit 2, no fleet."""
    state = tmp_path / "state"
    out = cli(command, "--rollout", "bad-canary", "--set", "phases.fault_s=1", state=state)
    assert out.returncode == 2, out.stdout + out.stderr
    assert "Argo Rollouts needs a Kubernetes API, and the sandbox has none" in out.stderr
    typo = cli(command, "--rollout", "bad-canery", "--platform", "kwok", state=state)
    assert typo.returncode == 2 and "'bad-canery' is not one of 'bad-canary', 'good-canary'" in typo.stderr
    assert "Traceback" not in out.stderr + typo.stderr
    assert not (state / "sandbox" / "fleet.json").exists() and not (state / "kwok").exists()


def test_plan_shows_the_release_and_what_its_verdict_expects(tmp_path: Path) -> None:
    out = cli("plan", "--platform", "kwok", "--rollout", "good-canary", "--fault", "zone-loss", state=tmp_path)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "release canary, promoted once analysis passes at +0s in us-east1 (Argo Rollouts)" in out.stdout
    assert "the release fully out in every region" in out.stdout and "inject zone-loss" in out.stdout
    elsewhere = cli("plan", "--platform", "kwok", "--rollout", "good-canary", "--set", 'rollout.regions=["mars"]',
                    state=tmp_path)  # fmt: skip
    assert elsewhere.returncode == 2 and "[rollout.regions]" in elsewhere.stderr and "'mars'" in elsewhere.stderr


def test_a_drill_that_freezes_deploys_on_the_sandbox_stops_before_anything_starts(tmp_path: Path) -> None:
    state = tmp_path / "state"
    out = cli("drill", "--freeze-deploys", "--set", "phases.fault_s=1", state=state)
    assert out.returncode == 2, out.stdout + out.stderr
    assert "Argo Rollouts needs a Kubernetes API, and the sandbox has none" in out.stderr
    assert not (state / "sandbox" / "fleet.json").exists()
