"""Usage mistakes through the installed entry point (.venv/bin/failover-drill): click's usage
message on stderr and exit 2, never a traceback (issue 15, point 1)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

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
