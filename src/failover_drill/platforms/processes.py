"""Starting and stopping the sandbox's processes, safely across shells and pid reuse.

Every process spawn() starts carries its fleet's mark in its environment (FAILOVER_DRILL_FLEET=
<resolved state dir>), so `down` and `recover` can find and stop a fleet even when its state
file is damaged or gone: the processes say whose they are, not only the records.
"""

from __future__ import annotations

import contextlib
import json
import os
import selectors
import signal
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import psutil

from failover_drill import obs
from failover_drill.platforms.polling import poll

log = obs.get(__name__)

FLEET_ENV = "FAILOVER_DRILL_FLEET"
PROCESS_ENV = "FAILOVER_DRILL_PROCESS"  # a process's name within its fleet, where the platform sets one


@dataclass
class ProcSpec:
    name: str
    kind: str  # replica | gateway | frontdoor | control-plane
    argv: list[str]
    log: str
    region: str | None = None
    zone: str | None = None
    port: int | None = None  # the port whose readiness tells the process is up
    pid: int | None = None
    start_ticks: int | None = None


def start_ticks(pid: int) -> int | None:
    """Kernel start time of pid (guards against pid reuse), None if gone or a zombie.

    Read from /proc by hand, not with psutil: fleet files persist this exact tick count as the
    process's identity, and psutil only offers create_time(), a float derived from it and the
    boot time; comparing floats across processes would turn pid-reuse checks into rounding."""
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # The command name may hold spaces and parentheses: split after the last ')'.
    fields = raw[raw.rindex(")") + 2 :].split()
    if fields[0] in ("Z", "X"):
        return None
    return int(fields[19])


def alive(spec: ProcSpec) -> bool:
    if spec.pid is None:
        return False
    ticks = start_ticks(spec.pid)
    return ticks is not None and ticks == spec.start_ticks


def frozen(spec: ProcSpec) -> bool:
    """Stopped by SIGSTOP (a freeze fault): alive, but not running."""
    if not alive(spec) or spec.pid is None:
        return False
    try:
        return bool(psutil.Process(spec.pid).status() == psutil.STATUS_STOPPED)
    except psutil.Error:
        return False


def spawn(spec: ProcSpec, env: dict[str, str] | None = None, *, fleet: str | Path) -> subprocess.Popen[bytes]:
    """Start spec's process with fleet's mark (fleet: the platform's resolved state dir)."""
    Path(spec.log).parent.mkdir(parents=True, exist_ok=True)
    with open(spec.log, "ab") as log:
        # A new session: Ctrl-C in the user's terminal reaches the drill, which reverts faults and
        # stops these in order, instead of every process dying at once mid-measurement.
        proc = subprocess.Popen(
            spec.argv,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            env={**os.environ, **(env or {}), FLEET_ENV: str(fleet)},
        )
    spec.pid = proc.pid
    for _ in range(100):
        ticks = start_ticks(proc.pid)
        if ticks is not None or proc.poll() is not None:
            break
        time.sleep(0.001)
    spec.start_ticks = ticks
    return proc


def signal_proc(spec: ProcSpec, sig: signal.Signals) -> bool:
    if not alive(spec) or spec.pid is None:
        return False
    try:
        os.kill(spec.pid, sig)
    except ProcessLookupError:
        return False
    return True


def reap(pid: int) -> None:
    with contextlib.suppress(ChildProcessError):
        os.waitpid(pid, os.WNOHANG)


def stop_all(specs: list[ProcSpec], grace_s: float = 3.0) -> list[str]:
    """SIGCONT (a frozen process cannot act on SIGTERM), SIGTERM, then SIGKILL; returns survivors."""
    live = [s for s in specs if alive(s)]
    for s in live:
        signal_proc(s, signal.SIGCONT)
        signal_proc(s, signal.SIGTERM)

    def not_yet() -> str | None:
        nonlocal live
        for s in live:
            if s.pid is not None:
                reap(s.pid)
        live = [s for s in live if alive(s)]
        return ", ".join(s.name for s in live) or None

    poll(not_yet, grace_s, 0.05)
    for s in live:
        signal_proc(s, signal.SIGKILL)
    time.sleep(0.05)
    for s in live:
        if s.pid is not None:
            reap(s.pid)
    return [s.name for s in specs if alive(s)]


def log_tail(path: str, lines: int = 8) -> str:
    try:
        text = Path(path).read_text(errors="replace").strip().splitlines()
    except OSError:
        return ""
    return "\n".join(text[-lines:])


def marked(fleet: str | Path) -> list[psutil.Process]:
    """Every live process carrying fleet's mark, read from /proc/<pid>/environ (the environment a
    process started with: what it does to os.environ later does not show there)."""
    mark = str(fleet)
    me = os.getpid()
    found: list[psutil.Process] = []
    for proc in psutil.process_iter():
        if proc.pid == me:
            continue
        # Gone, a zombie, or not ours to read: not a process of the fleet that still runs.
        with contextlib.suppress(psutil.Error):
            if proc.status() != psutil.STATUS_ZOMBIE and proc.environ().get(FLEET_ENV) == mark:
                found.append(proc)
    return found


def kill_and_wait(pids: list[int], timeout_s: float = 5.0) -> list[int]:
    """SIGKILL each pid and return once each is gone (exited, or a zombie): the pids that survived.
    A SIGKILL takes effect only when the kernel next runs the process, not when it is sent."""
    found: list[psutil.Process] = []
    for pid in pids:
        with contextlib.suppress(psutil.Error):
            found.append(psutil.Process(pid))
    return _kill_all(found, timeout_s)


def _kill_all(found: list[psutil.Process], timeout_s: float) -> list[int]:
    for proc in found:
        # psutil checks the pid still names the process it found (its start time) first.
        with contextlib.suppress(psutil.Error):
            proc.kill()
    return [p.pid for p in _wait_gone(found, timeout_s)]


def stop_marked(fleet: str | Path, grace_s: float = 3.0) -> tuple[int, list[int]]:
    """Stop every process carrying fleet's mark. Returns (how many were found, pids that survived)."""
    found = marked(fleet)
    return len(found), stop_procs(found, grace_s)


def stop_procs(found: list[psutil.Process], grace_s: float = 3.0) -> list[int]:
    """SIGCONT (a frozen process cannot act on SIGTERM), SIGTERM, SIGKILL after grace_s; returns
    the pids that survived."""
    for proc in found:
        for sig in (signal.SIGCONT, signal.SIGTERM):
            # psutil checks the pid still names the same process (its start time) before signalling.
            with contextlib.suppress(psutil.Error):
                proc.send_signal(sig)
    return _kill_all(_wait_gone(found, grace_s), 1.0)


def _wait_gone(found: list[psutil.Process], timeout_s: float) -> list[psutil.Process]:
    """Not psutil.wait_procs: a zombie whose parent is not us counts as gone here, where
    wait_procs would wait for its parent to reap it."""
    live = found

    def not_yet() -> str | None:
        nonlocal live
        for proc in live:
            reap(proc.pid)  # our own children would stay zombies otherwise
        live = [p for p in live if not _gone(p)]
        return f"{len(live)} still running" if live else None

    poll(not_yet, timeout_s, 0.05)
    return live


def _gone(proc: psutil.Process) -> bool:
    """Exited: no such process, or a zombie (dead; its parent, maybe not us, has yet to reap it)."""
    try:
        return proc.status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True
    except psutil.Error:
        return False


def spawn_forked(specs: list[ProcSpec], *, fleet: str | Path, reply_timeout_s: float = 10.0) -> None:
    """Start specs, every one `python -m <module> ...` of one module, from one fork server
    (platforms/forkserver.py): the module is imported once, not once per process. Each spec gets
    its pid and start ticks as from spawn(). A server that cannot start or stops answering leaves
    the rest to spawn(), said in the log."""
    if not specs:
        return
    module = _module_of(specs[0])
    if module is None or any(_module_of(s) != module for s in specs):
        raise ValueError("spawn_forked: every spec must run `python -m` of one module")
    logs = Path(specs[0].log).parent
    logs.mkdir(parents=True, exist_ok=True)
    with open(logs / "forkserver.log", "ab") as err:
        server = subprocess.Popen(
            # The fleet in its command line, which its children keep: `ps` shows whose they are.
            [specs[0].argv[0], "-m", "failover_drill.platforms.forkserver", module, str(fleet)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=err,
            start_new_session=True,
            env={**os.environ, FLEET_ENV: str(fleet)},
        )
    assert server.stdin is not None and server.stdout is not None
    left = list(specs)
    try:
        with selectors.DefaultSelector() as sel:
            sel.register(server.stdout, selectors.EVENT_READ)
            while left:
                spec = left[0]
                Path(spec.log).parent.mkdir(parents=True, exist_ok=True)
                server.stdin.write(json.dumps({"args": spec.argv[3:], "log": spec.log}).encode() + b"\n")
                server.stdin.flush()
                if not sel.select(reply_timeout_s):
                    raise OSError(f"no answer in {reply_timeout_s:g} s")
                pid = int(json.loads(server.stdout.readline())["pid"])
                spec.pid, spec.start_ticks = pid, start_ticks(pid)
                left.pop(0)
    except (OSError, ValueError, KeyError) as e:
        log.warning("fork server failed; starting the rest one by one", error=str(e), left=len(left))
        for spec in left:
            spawn(spec, fleet=fleet)
    finally:
        with contextlib.suppress(OSError):
            server.stdin.close()
        try:
            server.wait(timeout=5)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()
        server.stdout.close()


def _module_of(spec: ProcSpec) -> str | None:
    a = spec.argv
    return a[2] if len(a) >= 3 and a[1] == "-m" else None
