"""`failover-drill doctor`: the host checks a platform needs, in seconds, each with its fix; kind's
`up` runs the same checks first and refuses with the same lines before anything is created.

This machine has no Docker engine, no kind, low inotify limits and a kernel without sch_prio and
sch_netem: the CLI tests read what doctor says here. The checks' judgement (versions, limits,
module evidence, Docker on another kernel) is tested on stand-in tools and fake /proc trees."""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from pathlib import Path

import pytest

from failover_drill.errors import EnvoyNotFound, PlatformError
from failover_drill.platforms import doctor
from failover_drill.platforms.kind import doctor as kind_doctor
from failover_drill.platforms.kind.doctor import Host, inotify_checks, kind_checks, qdisc_checks, refuse_unless_ready
from tests.conftest import run_cli, topology


def _engine_up() -> bool:
    if shutil.which("docker") is None:
        return False
    return subprocess.run(["docker", "info"], check=False, capture_output=True, timeout=30).returncode == 0


needs_no_docker_engine = pytest.mark.skipif(_engine_up(), reason="a Docker engine runs here")


def _rows(text: str) -> list[str]:
    """The table's FAIL rows with the fix line under each."""
    lines = text.splitlines()
    return [f"{line}\n{lines[i + 1]}" for i, line in enumerate(lines) if "  FAIL  " in line]


@needs_no_docker_engine
def test_kind_doctor_names_what_is_missing_with_the_fix_in_seconds(tmp_path: Path) -> None:
    start = time.monotonic()
    out = run_cli("doctor", "--platform", "kind", state=tmp_path)
    took = time.monotonic() - start
    assert out.returncode == 3, out.stdout + out.stderr
    assert took < 20, f"doctor took {took:.1f} s"
    rows = _rows(out.stdout)
    docker = next(r for r in rows if r.startswith("docker "))
    assert "fix: " in docker and ("not reachable" in docker or "not on PATH" in docker)
    if shutil.which("kind") is None:
        kind = next(r for r in rows if r.startswith("kind "))
        assert "not on PATH" in kind and "fix: " in kind and "sigs.k8s.io/kind@" in kind
    if shutil.which("istioctl") is None:
        assert any(r.startswith("istioctl ") and "fix: " in r for r in rows)
    # this machine's kernel has no netem: the check says so and how to load it
    probe = subprocess.run(
        ["unshare", "--user", "--map-root-user", "--net", "tc", "qdisc", "add", "dev", "lo", "root", "netem"],
        capture_output=True,
        check=False,
    )
    if probe.returncode != 0 and b"unknown" in probe.stderr:
        netem = next(r for r in rows if r.startswith("qdisc sch_netem"))
        assert "fix: sudo modprobe sch_netem" in netem
    assert "checks failed" in out.stderr
    assert any(line.startswith("envoy ") and "  ok  " in line for line in out.stdout.splitlines())


@needs_no_docker_engine
def test_up_on_kind_refuses_with_doctors_lines_and_creates_nothing(tmp_path: Path) -> None:
    state = tmp_path / "state"
    doc = run_cli("doctor", "--platform", "kind", state=state)
    start = time.monotonic()
    out = run_cli("up", "--platform", "kind", state=state)
    assert out.returncode == 3 and time.monotonic() - start < 20
    assert "cannot start on this machine" in out.stderr and "nothing was created" in out.stderr
    rows = _rows(doc.stdout)
    assert rows and all(r in out.stderr for r in rows)
    assert not (state / "kind").exists()
    drill = run_cli("drill", "--platform", "kind", "--region", "us-east1", state=state, runs=tmp_path / "runs")
    assert drill.returncode == 3 and "cannot start on this machine" in drill.stderr
    assert not (tmp_path / "runs").exists() or not any((tmp_path / "runs").iterdir())


def test_sandbox_doctor_passes_with_envoy_here(tmp_path: Path) -> None:
    out = run_cli("doctor", "--platform", "sandbox", state=tmp_path)
    assert out.returncode == 0, out.stdout + out.stderr
    assert any(
        line.startswith("envoy ") and "  ok  " in line and "Envoy 1." in line for line in out.stdout.splitlines()
    )


# -- the checks' judgement ------------------------------------------------------------------------


def _fake_proc(root: Path, instances: int, watches: int, modules: str = "") -> Host:
    (root / "proc" / "sys" / "fs" / "inotify").mkdir(parents=True)
    (root / "proc" / "sys" / "fs" / "inotify" / "max_user_instances").write_text(f"{instances}\n")
    (root / "proc" / "sys" / "fs" / "inotify" / "max_user_watches").write_text(f"{watches}\n")
    (root / "proc" / "modules").write_text(modules)
    (root / "sys" / "module").mkdir(parents=True)
    (root / "lib" / "6.1.0-test").mkdir(parents=True)
    return Host(proc=root / "proc", sys=root / "sys", lib_modules=root / "lib", release="6.1.0-test", probe=False)


def test_inotify_limits_are_kinds_known_issue_values(tmp_path: Path) -> None:
    low = {c.name: c for c in inotify_checks(_fake_proc(tmp_path / "a", 128, 65536))}
    assert low["inotify max_user_instances"].failed and low["inotify max_user_watches"].failed
    assert "sudo sysctl fs.inotify.max_user_instances=512" in low["inotify max_user_instances"].fix
    assert "sudo sysctl fs.inotify.max_user_watches=524288" in low["inotify max_user_watches"].fix
    enough = inotify_checks(_fake_proc(tmp_path / "b", 512, 524288))
    assert [c.status for c in enough] == ["ok", "ok"]


def test_qdisc_modules_from_proc_sys_or_modules_builtin(tmp_path: Path) -> None:
    h = _fake_proc(tmp_path, 512, 524288, modules="sch_netem 24576 0 - Live 0x0\n")
    (h.sys / "module" / "cls_u32").mkdir()
    none_for_prio = {c.name: c for c in qdisc_checks(h)}
    assert none_for_prio["qdisc sch_netem"].status == "ok" and none_for_prio["qdisc cls_u32"].status == "ok"
    prio = none_for_prio["qdisc sch_prio"]
    assert prio.failed and prio.fix.startswith("sudo modprobe sch_prio")
    (h.lib_modules / h.release / "modules.builtin").write_text("kernel/net/sched/sch_prio.ko\n")
    assert all(c.status == "ok" for c in qdisc_checks(h))


def _stand_in(bin_dir: Path, tool: str, output: str) -> None:
    bin_dir.mkdir(exist_ok=True)
    script = bin_dir / tool
    script.write_text(f"#!/bin/sh\necho '{output}'\n")
    script.chmod(0o755)


def test_tool_versions_are_judged_against_the_pins(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    bin_dir = tmp_path / "bin"
    _stand_in(bin_dir, "kind", "kind v0.24.0 go1.22.6 linux/amd64")
    _stand_in(bin_dir, "istioctl", "client version: 1.23.2")
    _stand_in(bin_dir, "cilium", "cilium-cli: v0.16.20 compiled with go1.23.4 on linux/amd64")
    monkeypatch.setenv("PATH", f"{bin_dir}:{os.environ['PATH']}")
    checks = {c.name: c for c in kind_doctor.tool_checks("istio") + kind_doctor.tool_checks("cilium")}
    assert checks["kind"].failed and "older than v0.25.0" in checks["kind"].found
    assert checks["istioctl"].failed and "1.24.1" in checks["istioctl"].found
    assert checks["cilium"].status == "ok"
    _stand_in(bin_dir, "kind", "kind v0.25.0 go1.22.9 linux/amd64")
    _stand_in(bin_dir, "istioctl", "1.24.3")
    checks = {c.name: c for c in kind_doctor.tool_checks("istio")}
    # kubectl is not among them: the tool runs it for nothing (the kube layer does the API work)
    assert {n: c.status for n, c in checks.items()} == {"kind": "ok", "istioctl": "ok"}


def test_docker_on_another_kernel_skips_this_hosts_kernel_and_judges_its_memory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Docker Desktop or a remote DOCKER_HOST: this host's inotify and qdiscs are not the nodes'."""
    bin_dir = tmp_path / "bin"
    _stand_in(bin_dir, "docker", f"27.3.1|6.10.14-linuxkit|{8 * 1024**3}")
    monkeypatch.setenv("PATH", f"{bin_dir}:{os.environ['PATH']}")
    h = _fake_proc(tmp_path / "host", 128, 8192)
    checks = {c.name: c for c in kind_checks(topology("istio"), h)}
    assert checks["docker"].status == "ok" and "6.10.14-linuxkit" in checks["docker"].found
    assert all(checks[n].status == "skip" for n in checks if n.startswith(("inotify", "qdisc")))
    assert checks["memory"].failed and "Docker Desktop" in checks["memory"].fix


def test_envoy_elsewhere_than_linux_x86_64_is_said_up_front(monkeypatch: pytest.MonkeyPatch) -> None:
    def none() -> tuple[Path, str]:
        raise EnvoyNotFound("no runnable Envoy binary", hint="install it")

    monkeypatch.setattr(doctor, "resolve_envoy", none)
    mac = doctor.envoy_check(system="Darwin", machine="arm64")
    assert mac.failed and "Linux x86_64 only" in mac.found and "Darwin arm64" in mac.found
    assert "brew install envoy" in mac.fix and "FAILOVER_DRILL_ENVOY" in mac.fix
    linux = doctor.envoy_check(system="Linux", machine="x86_64")
    assert linux.failed and linux.fix == "install it"


def test_refusal_carries_the_failed_rows(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))  # no docker, no kind, nothing
    h = _fake_proc(tmp_path / "host", 128, 8192)
    with pytest.raises(PlatformError) as err:
        refuse_unless_ready(topology("cilium"), h)
    text = str(err.value)
    assert "nothing was created" in text
    for name in ("docker", "kind", "cilium", "inotify max_user_instances", "qdisc sch_netem"):
        assert f"\n{name} " in text, name
    assert "\nkubectl " not in text
