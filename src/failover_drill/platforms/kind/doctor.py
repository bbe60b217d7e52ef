"""What the kind platform needs from the host, checked in seconds before anything is created
(`failover-drill doctor --platform kind`; `up --platform kind` refuses with the same lines):

- a reachable Docker engine (`docker info`);
- kind and istioctl or the cilium CLI on PATH, at versions that fit the pins (kind: the release
  whose default node image is KIND_NODE_IMAGE; istioctl of ISTIO_VERSION's minor, since `istioctl
  install` installs its own version; a cilium CLI that installs Cilium >= 1.15). kubectl is not
  needed: every Kubernetes API operation, exec into pods included, goes through the kube layer;
- inotify limits of at least kind's known-issues values (max_user_instances 512,
  max_user_watches 524288): a dozen node containers run out of the common defaults (128) with
  "too many open files";
- the qdiscs the latency layout builds in every node container (platforms/kind/netem.py): prio,
  u32 and netem. Node containers share the host's kernel, so the host must have them. Where `tc`
  and unprivileged user namespaces exist they are tried for real in a scratch network namespace
  (the kernel loads a module on demand there as it would for a node); otherwise /proc/modules,
  /sys/module and the running kernel's modules.builtin / module files say;
- memory (~12 GiB for three regions), and the Envoy binary of the host front door.

When the engine runs on another kernel (Docker Desktop's VM, a remote DOCKER_HOST), the kernel
checks on this host say nothing about it: they are skipped, and memory is the engine's.
"""

from __future__ import annotations

import os
import platform as host
import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

from failover_drill.config.topology import Topology
from failover_drill.errors import PlatformError
from failover_drill.platforms.doctor import (
    GIB,
    Check,
    envoy_check,
    fail,
    memory_check,
    ok,
    parse_version,
    render,
    skip,
    tool_check,
    tool_output,
)
from failover_drill.platforms.kind.cluster_config import KIND_NODE_IMAGE, KIND_VERSION
from failover_drill.platforms.kind.commands import INSTALL_HINTS
from failover_drill.platforms.kind.mesh import CILIUM_CLI_MIN, CILIUM_VERSION, ISTIO_VERSION

# kind's known-issues page ("Pod errors due to 'too many open files'").
INOTIFY_MIN = {"max_user_instances": 512, "max_user_watches": 524288}
# The latency layout: a prio root qdisc, u32 filters by address, a netem per band.
QDISC_MODULES = ("sch_prio", "cls_u32", "sch_netem")
FLEET_MEMORY_GIB = 12.0

# Tries the layout's pieces in a scratch network namespace: prio at the root, a u32 filter on it
# and a netem under one band, as netem.py lays them out; without prio, netem at the root and u32
# on the ingress qdisc. One line per piece: "<module> <tc's exit code> <tc's first line>".
_PROBE = r"""
probe() { n=$1; shift; out=$(tc "$@" 2>&1); rc=$?; echo "$n $rc $(printf '%s' "$out" | head -n1)"; return $rc; }
ip link set lo up 2>/dev/null
if probe sch_prio qdisc add dev lo root handle 1: prio; then
  probe cls_u32 filter add dev lo parent 1:0 protocol ip prio 1 u32 match ip dst 10.0.0.1/32 flowid 1:1
  probe sch_netem qdisc add dev lo parent 1:1 handle 10: netem delay 1ms
else
  probe sch_netem qdisc add dev lo root handle 10: netem delay 1ms
  tc qdisc del dev lo root >/dev/null 2>&1
  if tc qdisc add dev lo ingress >/dev/null 2>&1; then
    probe cls_u32 filter add dev lo parent ffff: protocol ip prio 1 u32 match ip dst 10.0.0.1/32 flowid :1
  fi
fi
"""


@dataclass(frozen=True)
class Host:
    """Where the kernel facts are read (a fake tree in tests), and whether tc may be tried."""

    proc: Path = Path("/proc")
    sys: Path = Path("/sys")
    lib_modules: Path = Path("/lib/modules")
    release: str = field(default_factory=lambda: os.uname().release)
    probe: bool = True


# -- Docker ----------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Engine:
    version: str
    kernel: str
    mem_bytes: int | None


def docker_check() -> tuple[Check, Engine | None]:
    if shutil.which("docker") is None:
        return fail("docker", "the docker CLI is not on PATH", INSTALL_HINTS["docker"]), None
    rc, text = tool_output(["docker", "info", "-f", "{{.ServerVersion}}|{{.KernelVersion}}|{{.MemTotal}}"])
    parts = text.splitlines()[-1].split("|") if rc == 0 and text else []
    if len(parts) != 3 or not parts[0]:
        last = text.splitlines()[-1] if text else f"exit {rc}"
        return fail(
            "docker",
            f"the Docker engine is not reachable: {last[:160]}",
            "start Docker (`sudo systemctl start docker`, or open Docker Desktop) and let this user use it "
            "(`sudo usermod -aG docker $USER`, then log in again)",
        ), None
    mem = int(parts[2]) if parts[2].isdigit() else None
    engine = Engine(parts[0], parts[1], mem)
    return ok("docker", f"engine {engine.version}, kernel {engine.kernel}"), engine


# -- tools -----------------------------------------------------------------------------------------
def tool_checks(mesh: str) -> list[Check]:
    kind_pin = parse_version(KIND_VERSION)
    istio_pin = parse_version(ISTIO_VERSION)
    cilium_min = parse_version(CILIUM_CLI_MIN)
    assert kind_pin and istio_pin and cilium_min

    def kind_ok(v: tuple[int, int, int]) -> str | None:
        return None if v >= kind_pin else f"older than v{KIND_VERSION}, whose default node image is {KIND_NODE_IMAGE}"

    def istioctl_ok(v: tuple[int, int, int]) -> str | None:
        if v[:2] == istio_pin[:2]:
            return None
        return f"`istioctl install` installs its own version, and the mesh is pinned to {ISTIO_VERSION}"

    def cilium_ok(v: tuple[int, int, int]) -> str | None:
        return None if v >= cilium_min else f"older than v{CILIUM_CLI_MIN}, the first CLI for Cilium 1.15 and newer"

    checks = [
        tool_check("kind", ["kind", "version"], INSTALL_HINTS["kind"], kind_ok, f"pinned v{KIND_VERSION}"),
    ]
    if mesh.startswith("cilium"):
        checks.append(
            tool_check(
                "cilium",
                ["cilium", "version", "--client"],
                INSTALL_HINTS["cilium"],
                cilium_ok,
                f"installs Cilium {CILIUM_VERSION}",
            )
        )
    else:
        checks.append(
            tool_check(
                "istioctl",
                ["istioctl", "version", "--remote=false"],
                f"curl -L https://istio.io/downloadIstio | ISTIO_VERSION={ISTIO_VERSION} sh - and put "
                f"istio-{ISTIO_VERSION}/bin on PATH",
                istioctl_ok,
                f"pinned {ISTIO_VERSION}",
            )
        )
    return checks


# -- kernel ----------------------------------------------------------------------------------------
def inotify_checks(h: Host) -> list[Check]:
    out = []
    for key, need in INOTIFY_MIN.items():
        name = f"inotify {key}"
        path = h.proc / "sys" / "fs" / "inotify" / key
        try:
            have = int(path.read_text().strip())
        except (OSError, ValueError):
            out.append(skip(name, f"{path} unreadable; kind needs >= {need}"))
            continue
        found = f"{have} (kind needs >= {need})"
        if have < need:
            out.append(
                fail(
                    name,
                    found,
                    f"sudo sysctl fs.inotify.{key}={need}; to keep it: "
                    f"echo fs.inotify.{key}={need} | sudo tee -a /etc/sysctl.d/99-kind.conf",
                )
            )
        else:
            out.append(ok(name, found))
    return out


def module_evidence(name: str, h: Host) -> str | None:
    """What the files say about a kernel module: loaded, built in, loadable, or nothing."""
    try:
        if any(line.split(" ", 1)[0] == name for line in (h.proc / "modules").read_text().splitlines()):
            return "loaded (/proc/modules)"
    except OSError:
        pass
    if (h.sys / "module" / name).is_dir():
        return f"present (/sys/module/{name})"
    kdir = h.lib_modules / h.release
    try:
        builtin = (kdir / "modules.builtin").read_text().splitlines()
    except OSError:
        builtin = []
    if any(Path(line.strip()).name == f"{name}.ko" for line in builtin):
        return "built in (modules.builtin)"
    if list((kdir / "kernel" / "net" / "sched").glob(f"{name}.ko*")):
        return "a loadable module of the running kernel"
    return None


def probe_qdiscs(h: Host) -> dict[str, tuple[int, str]]:
    """module -> (tc's exit code, its first line), tried in a scratch network namespace; empty when
    that cannot be done here (no tc, no unshare, no unprivileged user namespaces)."""
    if not h.probe or shutil.which("tc") is None or shutil.which("unshare") is None:
        return {}
    try:
        out = subprocess.run(
            ["unshare", "--user", "--map-root-user", "--net", "--", "sh", "-c", _PROBE],
            capture_output=True,
            text=True,
            timeout=10,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired):
        return {}
    results: dict[str, tuple[int, str]] = {}
    for line in out.stdout.splitlines():
        parts = line.split(" ", 2)
        if len(parts) >= 2 and parts[0] in QDISC_MODULES and parts[1].isdigit():
            results[parts[0]] = (int(parts[1]), parts[2] if len(parts) > 2 else "")
    return results


def qdisc_checks(h: Host) -> list[Check]:
    probed = probe_qdiscs(h)
    out = []
    for name in QDISC_MODULES:
        evidence = module_evidence(name, h)
        fix = (
            f"sudo modprobe {name}; if modprobe finds no such module, this kernel lacks it: install the "
            f"distribution's extra kernel modules (e.g. linux-modules-extra-$(uname -r)) or use a kernel with it"
        )
        check = f"qdisc {name}"
        if name in probed:
            rc, msg = probed[name]
            if rc == 0:
                out.append(ok(check, "works (tried with tc in a scratch network namespace)"))
            else:
                files = evidence or "not in /proc/modules, /sys/module or modules.builtin"
                out.append(fail(check, f"the kernel refused it ({msg.strip() or f'tc exit {rc}'}); {files}", fix))
        elif evidence:
            out.append(ok(check, evidence))
        else:
            out.append(fail(check, "not in /proc/modules, /sys/module, modules.builtin or the module files", fix))
    return out


# -- all of it -------------------------------------------------------------------------------------
def kind_checks(topo: Topology, h: Host | None = None) -> list[Check]:
    h = h or Host()
    docker, engine = docker_check()
    checks = [docker, *tool_checks(topo.mesh)]
    memory = f"the kind fleet ({len(topo.regions)} regions)"
    need = FLEET_MEMORY_GIB * len(topo.regions) / 3
    elsewhere = host.system() != "Linux" or (engine is not None and engine.kernel != h.release)
    if elsewhere:
        why = f"Docker runs on another kernel ({engine.kernel if engine else 'a VM'}), not this host's"
        checks += [
            skip(f"inotify {k}", f"{why}: raise it there if kind reports too many open files") for k in INOTIFY_MIN
        ]
        checks += [skip(f"qdisc {m}", f"{why}: it needs {m} too") for m in QDISC_MODULES]
        if engine is not None and engine.mem_bytes is not None:
            found = f"{engine.mem_bytes / GIB:.1f} GiB for Docker, {memory} needs ~{need:g} GiB"
            checks.append(
                ok("memory", found)
                if engine.mem_bytes >= need * GIB
                else fail("memory", found, "give Docker more memory (Docker Desktop: Settings > Resources)")
            )
        else:
            checks.append(memory_check(need, memory, Path("/nonexistent")))
    else:
        checks += inotify_checks(h)
        checks += qdisc_checks(h)
        checks.append(memory_check(need, memory, h.proc / "meminfo"))
    checks.append(envoy_check())
    return checks


def refuse_unless_ready(topo: Topology, h: Host | None = None) -> None:
    """`up`'s first step: the failed checks, as doctor prints them, before anything is created."""
    checks = kind_checks(topo, h)
    failed = [c for c in checks if c.failed]
    if failed:
        raise PlatformError(
            f"the kind platform cannot start on this machine: {len(failed)} of {len(checks)} host checks "
            "failed (nothing was created)\n" + "\n".join(render(failed)),
            hint="each line above says its fix; then check again with `failover-drill doctor --platform kind`",
        )
