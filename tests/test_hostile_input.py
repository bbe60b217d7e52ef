"""Hostile input files: every file a user gives goes through one loader that answers with a
ConfigError naming file, line and field, never a traceback, whatever the bytes (issue 16, point 4)."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from failover_drill.config.scenario import Scenario, load_scenario
from failover_drill.config.topology import Topology, load_topology
from failover_drill.config.yamlio import MAX_INPUT_BYTES
from failover_drill.errors import ConfigError
from failover_drill.faults.model import FAULT_KINDS
from failover_drill.gameday.model import GameDayFile, load_gameday
from failover_drill.gameday.runner import plan_day
from tests.conftest import MANIFESTS_DIR, ROOT, TOPOLOGY

CERT_VARIANTS = ("leaf", "intermediate", "rotation-stopped")
CLI = Path(sys.executable).parent / "failover-drill"


def _topology_file(tmp_path: Path, body: str) -> Path:
    f = tmp_path / "topology.yaml"
    f.write_text(body + f"manifests: {MANIFESTS_DIR}\n")
    return f


def _refused(loader: Any, path: Path) -> ConfigError:
    with pytest.raises(ConfigError) as e:
        loader(path)
    assert e.value.exit_code == 2
    assert str(e.value).startswith(str(path))
    return e.value


# -- not text ------------------------------------------------------------------------------------


@pytest.mark.parametrize("loader", [load_topology, load_scenario], ids=["topology", "scenario"])
def test_a_binary_file_is_refused_as_binary(tmp_path: Path, loader: Any) -> None:
    f = tmp_path / "input.yaml"
    f.write_bytes(b"name: x\n\x7fELF\x02\x01\x01\x00\x00\x00\xff\xfe")
    err = _refused(loader, f)
    assert "binary file" in err.message and err.line == 2


@pytest.mark.parametrize("loader", [load_topology, load_scenario], ids=["topology", "scenario"])
def test_a_file_that_is_not_utf8_names_the_byte_and_line(tmp_path: Path, loader: Any) -> None:
    f = tmp_path / "input.yaml"
    f.write_bytes(b"name: drill\nregion: caf\xe9\n")  # Latin-1
    err = _refused(loader, f)
    assert "not UTF-8" in err.message and "0xe9" in err.message and err.line == 2


def test_an_oversized_file_is_refused_before_parsing(tmp_path: Path) -> None:
    f = tmp_path / "huge.yaml"
    f.write_text("# padding\n" * (MAX_INPUT_BYTES // 10 + 1))
    err = _refused(load_scenario, f)
    assert "larger than 1 MiB" in err.message


def test_a_folder_is_refused(tmp_path: Path) -> None:
    err = _refused(load_topology, tmp_path)
    assert "folder" in err.message


# -- malformed -----------------------------------------------------------------------------------


def test_a_300_character_region_name_is_refused_for_its_length_and_not_echoed(tmp_path: Path) -> None:
    name = "a" * 300  # lower-case letters: only the length is wrong
    f = _topology_file(tmp_path, f"regions:\n  - name: us-east1\n  - name: {name}\n")
    err = _refused(load_topology, f)
    msg = str(err)
    assert "too long" in msg and "41" in msg and "300 characters" in msg
    assert "lower-case" not in msg
    assert name[:60] not in msg  # cut, not echoed whole
    assert err.line == 3 and err.field == "regions.1.name"


def test_a_short_bad_name_is_quoted_whole_and_the_message_is_not_cut(tmp_path: Path) -> None:
    f = _topology_file(tmp_path, "regions:\n  - name: Bad Name\n")
    err = _refused(load_topology, f)
    assert err.reason == "region name 'Bad Name' must start with a lower-case letter and hold only a-z, 0-9 and '-'"


def test_duplicate_region_names_are_reported_at_the_second_entry(tmp_path: Path) -> None:
    f = _topology_file(tmp_path, "regions:\n  - name: us-east1\n  - name: eu-west1\n  - name: us-east1\n")
    err = _refused(load_topology, f)
    assert err.line == 4 and err.field == "regions.2.name"
    assert "used twice" in err.message and "regions.0" in err.message


def test_latency_for_an_unknown_region_is_reported_at_its_entry(tmp_path: Path) -> None:
    f = _topology_file(
        tmp_path, "regions:\n  - name: a1\n  - name: b1\nlatency_ms:\n  a1:\n    b1: 20\n    zz: 5\n  qq:\n    a1: 3\n"
    )
    err = _refused(load_topology, f)
    assert err.line == 7 and err.field == "latency_ms.a1.zz" and "unknown region 'zz'" in err.message
    f = _topology_file(tmp_path, "regions:\n  - name: a1\nlatency_ms:\n  qq:\n    a1: 3\n")
    err = _refused(load_topology, f)
    assert err.line == 4 and err.field == "latency_ms.qq"


def test_a_duplicate_yaml_key_is_an_error_naming_both_lines(tmp_path: Path) -> None:
    f = tmp_path / "s.yaml"
    f.write_text("name: x\nphases:\n  fault_s: 10\n  recovery_s: 5\n  fault_s: 30\n")
    err = _refused(load_scenario, f)
    assert err.line == 5 and err.field == "phases.fault_s" and "first at line 3" in err.message


def test_an_alias_bomb_and_a_recursive_alias_are_refused(tmp_path: Path) -> None:
    f = tmp_path / "bomb.yaml"
    rows = ['a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    for prev, cur in zip("abcdefgh", "bcdefghi", strict=True):
        rows.append(f"{cur}: &{cur} [{', '.join([f'*{prev}'] * 10)}]")
    f.write_text("\n".join(rows) + "\n")
    assert "more than 100,000 values" in _refused(load_scenario, f).message
    f.write_text("name: &n [*n]\n")
    assert "levels deep" in _refused(load_scenario, f).message


def test_a_long_unknown_value_is_cut_in_messages_written_elsewhere(tmp_path: Path) -> None:
    f = tmp_path / "s.yaml"
    kind = "meteor-" * 50
    f.write_text(f"faults:\n  - kind: {kind}\n")
    err = _refused(load_scenario, f)
    assert "unknown fault" in err.message and kind not in str(err) and err.line == 2


def test_the_cli_refuses_a_binary_topology_with_exit_2_and_one_message(tmp_path: Path) -> None:
    binary = tmp_path / "topology.yaml"
    binary.write_bytes(bytes(range(256)) * 4)
    for args in (["drill", "--runs-dir", str(tmp_path / "runs")], ["plan"]):
        out = subprocess.run(
            [str(CLI), *args, "--topology", str(binary), "--state-dir", str(tmp_path / "state")],
            capture_output=True,
            text=True,
            timeout=60,
            cwd=ROOT,
            check=False,
        )
        assert out.returncode == 2, out.stderr
        assert "Traceback" not in out.stderr and out.stdout == ""
        lines = out.stderr.splitlines()
        # The error on one line (file, line, reason), then the project's usual fix line.
        assert lines[0] == f"error: {binary}:1: binary file, not YAML text (a NUL byte)", out.stderr
        assert len(lines) == 2 and lines[1].startswith("  fix: ")
    assert not (tmp_path / "state").exists() and not (tmp_path / "runs").exists()


# -- property-based: a valid model or a ConfigError, never another exception --------------------

PROPERTY = settings(
    max_examples=int(os.environ.get("HYPOTHESIS_EXAMPLES", "150")),
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)


def _game_day_planned(path: Path) -> GameDayFile:
    """A game day loaded and every drill checked against the fleet, as `gameday` does first."""
    f = load_gameday(path)
    plan_day(f, load_topology(TOPOLOGY))
    return f


def _load_both(data: bytes) -> None:
    with tempfile.TemporaryDirectory() as d:
        f = Path(d) / "input.yaml"
        f.write_bytes(data)
        loaders: tuple[tuple[Any, type], ...] = (
            (load_topology, Topology),
            (lambda p: load_scenario(p)[0], Scenario),
            (_game_day_planned, GameDayFile),
        )
        for loader, model in loaders:
            try:
                assert isinstance(loader(f), model)
            except ConfigError as exc:
                assert str(exc).startswith(str(f)), str(exc)
                assert len(str(exc)) < 1000


@PROPERTY
@given(st.binary(max_size=2000))
def test_any_bytes_give_a_model_or_a_config_error(data: bytes) -> None:
    _load_both(data)


@PROPERTY
@given(st.text(max_size=2000))
def test_any_text_gives_a_model_or_a_config_error(text: str) -> None:
    _load_both(text.encode("utf-8", errors="surrogatepass"))


_yaml_scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(10**30), max_value=10**30)
    | st.floats()
    | st.text(max_size=60)
    | st.sampled_from(["us-east1", "eu-west1", "a", "b", "kill", "freeze", "front-door", "", "0"])
)
_yaml_values = st.recursive(
    _yaml_scalars,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12) | _yaml_scalars, inner, max_size=4)
    ),
    max_leaves=20,
)
_names = st.sampled_from(["us-east1", "eu-west1", "asia-southeast1", "a" * 300, "Bad Name", "", "1a"]) | st.text(
    max_size=50
)
_topologies = st.fixed_dictionaries(
    {"regions": st.lists(st.fixed_dictionaries({"name": _names}, optional={"zones": _yaml_values}), max_size=4)},
    optional={
        "name": _yaml_values,
        "mesh": st.sampled_from(["istio", "istio-tuned", "cilium", "linkerd"]) | _yaml_values,
        "replicas_per_zone": _yaml_values,
        "latency_ms": st.dictionaries(_names, st.dictionaries(_names, _yaml_scalars, max_size=3), max_size=3)
        | _yaml_values,
        "sandbox": _yaml_values,
        "extra": _yaml_values,
    },
).map(lambda d: {**d, "manifests": str(MANIFESTS_DIR)})
_faults = st.fixed_dictionaries(
    {"kind": st.sampled_from(FAULT_KINDS) | _yaml_values},
    optional={
        "target": _names,
        "source": _names,
        "mode": st.sampled_from(["kill", "freeze", "frezee"]) | _yaml_values,
        "delay_ms": _yaml_scalars,
        "jitter_pct": _yaml_scalars,
        "fail_pct": _yaml_scalars,
        "cert": st.sampled_from(CERT_VARIANTS) | _yaml_values,
        "at_s": _yaml_scalars,
        "duration_s": _yaml_scalars,
    },
)
_scenarios = st.fixed_dictionaries(
    {},
    optional={
        "name": _yaml_values,
        "region": _names,
        "faults": st.lists(_faults, max_size=3) | _yaml_values,
        "phases": st.dictionaries(st.sampled_from(["warmup_s", "baseline_s", "fault_s", "recovery_s"]), _yaml_scalars)
        | _yaml_values,
        "traffic": st.dictionaries(
            st.sampled_from(["rate_rps", "timeout_s", "workers", "retry", "origin"]), _yaml_values
        )
        | _yaml_values,
        "slo": st.dictionaries(st.sampled_from(["target_pct", "stability_s", "window_s"]), _yaml_scalars),
        "limits": _yaml_values,
    },
)


_checkpoints = st.fixed_dictionaries(
    {},
    optional={
        "name": st.sampled_from(["page", "ack", "Bad Name", ""]) | _yaml_values,
        "prompt": st.text(max_size=40) | _yaml_values,
        "kind": st.sampled_from(["yes-no", "time", "text", "poll"]) | _yaml_values,
        "expect": st.sampled_from(["yes", "no", "maybe"]) | _yaml_values,
        "default": st.sampled_from(["yes", "", "95", "14:03", "soon"]) | _yaml_values,
        "timeout_s": _yaml_scalars,
    },
)
_gamedays = st.fixed_dictionaries(
    {
        "drills": st.lists(
            st.one_of(_scenarios, _yaml_values).map(
                lambda d: {**d, "checkpoints": []} if isinstance(d, dict) and not d.get("checkpoints") else d
            ),
            max_size=3,
        )
    },
    optional={
        "title": _yaml_values,
        "roles": _yaml_values,
        "platform": st.sampled_from(["sandbox", "kwok", "nomad"]) | _yaml_values,
        "mesh": st.sampled_from(["istio", "cilium", "linkerd"]) | _yaml_values,
        "extra": st.lists(_checkpoints, max_size=2),
    },
)
_named_drills = st.fixed_dictionaries(
    {
        "title": st.just("a day"),
        "drills": st.lists(
            st.fixed_dictionaries(
                {"name": st.text(min_size=1, max_size=20), "faults": st.lists(_faults, min_size=1, max_size=2)},
                optional={"region": _names, "checkpoints": st.lists(_checkpoints, max_size=3), "phases": _yaml_values},
            ),
            min_size=1,
            max_size=3,
        ),
    }
)


@PROPERTY
@given(st.one_of(_topologies, _scenarios, _gamedays, _named_drills, _yaml_values))
def test_any_yaml_structure_gives_a_model_or_a_config_error(doc: Any) -> None:
    _load_both(yaml.safe_dump(doc, allow_unicode=True).encode("utf-8", errors="surrogatepass"))


@PROPERTY
@given(st.data())
def test_a_damaged_real_topology_gives_a_model_or_a_config_error(data: st.DataObject) -> None:
    text = TOPOLOGY.read_text().replace("manifests/payment-gateway", str(MANIFESTS_DIR))
    for _ in range(data.draw(st.integers(1, 4))):
        at = data.draw(st.integers(0, len(text)))
        cut = data.draw(st.integers(0, 8))
        text = text[:at] + data.draw(st.text(max_size=6)) + text[at + cut :]
    _load_both(text.encode("utf-8", errors="surrogatepass"))


# -- Chaos Toolkit experiments: checked by the control before anything runs -----------------------

_ACTIVITY_FUNCS = {
    "actions": ["inject_fault", "revert_fault", "start_traffic", "fleet_up", "no_such_action"],
    "probes": ["payments_lost", "drill_verdict", "failover_time", "p99_latency_ms", "nope"],
}
_activities = st.fixed_dictionaries(
    {
        "name": st.text(max_size=30) | _yaml_values,
        "provider": st.one_of(
            st.sampled_from(list(_ACTIVITY_FUNCS)).flatmap(
                lambda mod: st.fixed_dictionaries(
                    {
                        "type": st.just("python"),
                        "module": st.just(f"failover_drill.adapters.chaostoolkit.{mod}"),
                        "func": st.sampled_from(_ACTIVITY_FUNCS[mod]) | _yaml_values,
                    },
                    optional={"arguments": _faults | _yaml_values},
                )
            ),
            _yaml_values,
        ),
    },
    optional={"type": st.sampled_from(["action", "probe"]) | _yaml_values, "tolerance": _yaml_values},
)
_experiments = st.fixed_dictionaries(
    {},
    optional={
        "title": _yaml_values,
        "steady-state-hypothesis": st.fixed_dictionaries({}, optional={"probes": st.lists(_activities, max_size=3)})
        | _yaml_values,
        "method": st.lists(_activities, max_size=4) | _yaml_values,
        "rollbacks": st.lists(_activities, max_size=2) | _yaml_values,
        "configuration": st.dictionaries(st.text(max_size=10), _yaml_scalars, max_size=3),
    },
)


@PROPERTY
@given(_experiments)
def test_any_experiment_gives_its_problems_as_lines_never_a_traceback(experiment: Any) -> None:
    """What the Chaos Toolkit control checks before an experiment starts (adapters/chaostoolkit/
    validation.py): whatever an experiment's activities hold, a list of one-line problems (or
    none), never an exception that would surface as chaoslib's traceback."""
    from failover_drill.adapters.chaostoolkit.validation import injected_kinds, problems

    config = experiment.get("configuration") if isinstance(experiment, dict) else None
    found = problems(experiment, config, None, load_topology(TOPOLOGY), "us-east1")
    assert isinstance(found, list) and all(isinstance(p, str) and "\n" not in p and len(p) < 2000 for p in found)
    kinds = injected_kinds(experiment, config, None)
    assert all(k in FAULT_KINDS for k in kinds)
