"""The kwok fleet without root: in a user namespace of its own (issue 13).

The pods' network (netns.py) needs CAP_NET_ADMIN: `ip netns add`, a veth pair, a route. Where the
kernel lets an ordinary user create user namespaces, a holder process owns one, with a network
namespace and a mount namespace of its own (a tmpfs on /run, where `ip netns` keeps its names), in
which that user is root. The fleet runs inside it exactly as it runs as root on the host: the same
pod network, processes, addresses and code paths. Only the way in differs: every failover-drill
command on such a fleet enters the namespace first (nsenter, then the same command again), and
other tools enter with `failover-drill enter -- COMMAND` (Chaos Toolkit's `chaos run`, curl). The
fleet's addresses (API servers, gateways, the front door) exist inside it only.

`down` stops the holder after the fleet (and `recover` a holder whose fleet is gone); when it
and every process inside are gone the kernel removes the namespaces.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

from failover_drill.errors import PlatformError
from failover_drill.platforms.processes import FLEET_ENV, start_ticks

# Set inside the namespace (to the holder's pid): a command that sees it does not enter again.
INSIDE_ENV = "FAILOVER_DRILL_KWOK_NAMESPACE"
ENTER_HINT = "failover-drill enter --state-dir {state} -- COMMAND"

# What the CLI runs again inside the namespace; None in a library (Chaos Toolkit's process), which
# cannot re-run itself and is told how to enter instead.
_cli_argv: list[str] | None = None


def allow_reexec(argv: list[str]) -> None:
    """The CLI's entry point: a command that meets a rootless fleet is run again inside it."""
    global _cli_argv
    _cli_argv = list(argv)


def needed() -> bool:
    """Not root, and not already inside a fleet's namespace."""
    return os.geteuid() != 0 and INSIDE_ENV not in os.environ


def unavailable() -> str | None:
    """None when this user can make the namespace, else why not (tried for real: sysctls and
    security modules such as AppArmor's restriction of unprivileged user namespaces decide)."""
    for tool in ("unshare", "nsenter", "ip"):
        if shutil.which(tool) is None:
            return f"the `{tool}` command is not installed (util-linux, iproute2)"
    try:
        out = subprocess.run(
            ["unshare", "--user", "--map-root-user", "--net", "--mount", "true"],
            capture_output=True,
            text=True,
            timeout=10,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"unshare failed: {exc}"
    if out.returncode != 0:
        return f"this kernel refuses an unprivileged user namespace ({out.stderr.strip()[:200]})"
    return None


def _record(state_dir: Path) -> Path:
    return state_dir / "kwok-namespace.json"


def holder(state_dir: Path) -> int | None:
    """The live holder's pid, None when there is none (or its record names a reused pid)."""
    try:
        rec = json.loads(_record(state_dir).read_text())
        pid, ticks = int(rec["pid"]), rec["start_ticks"]
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return pid if start_ticks(pid) == ticks and ticks is not None else None


def create(state_dir: Path) -> int:
    """Start the holder and return its pid once the namespace is ready."""
    state_dir.mkdir(parents=True, exist_ok=True)
    ready = state_dir / "kwok-namespace.ready"
    ready.unlink(missing_ok=True)
    log = state_dir / "logs" / "kwok-namespace.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    # The holder's command line names the state dir, as every process of the fleet's does.
    script = (
        'mount -t tmpfs -o mode=755 failover-drill-run /run && mkdir /run/netns && ip link set lo up && : > "$1" '
        '&& exec "$2" -c "import signal; signal.pause()" holds-kwok-namespace-of "$3"'
    )
    argv = ["unshare", "--user", "--map-root-user", "--net", "--mount", "--propagation", "private", "--"]
    argv += ["sh", "-c", script, "sh", str(ready), sys.executable, str(state_dir)]
    with log.open("ab") as out:
        proc = subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            # Not the fleet's own mark: a marked process with no state file reads as a damaged
            # fleet, and the holder comes before the state. Its command line names the state dir.
            env={k: v for k, v in os.environ.items() if k != FLEET_ENV},
        )
    deadline = time.monotonic() + 10
    while not ready.exists():
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            proc.wait()
            tail = log.read_text(errors="replace").strip().splitlines()[-3:]
            raise PlatformError(
                f"the fleet's user namespace did not start: {' '.join(tail) or 'no output'}",
                hint="run as root, or allow unprivileged user namespaces (sysctl kernel.unprivileged_userns_clone=1)",
            )
        time.sleep(0.01)
    ticks = None
    while ticks is None and proc.poll() is None:
        ticks = start_ticks(proc.pid)
    _record(state_dir).write_text(json.dumps({"pid": proc.pid, "start_ticks": ticks}))
    return proc.pid


def enter_argv(pid: int) -> list[str]:
    """nsenter into the holder's namespaces as their root, in the current directory."""
    # Our own uid stays (it is the namespace's root): setgroups is denied in a namespace an
    # unprivileged user made, so nsenter's default switch to uid 0 would fail.
    return [
        "nsenter",
        f"--target={pid}",
        "--user",
        "--net",
        "--mount",
        "--preserve-credentials",
        f"--wd={os.getcwd()}",
        "--",
    ]


def reexec(state_dir: Path, pid: int) -> None:
    """Run this CLI command again inside the fleet's namespace (never returns), or say how to enter."""
    if _cli_argv is None:
        raise PlatformError(
            "this kwok fleet runs in a user namespace of its own (it was brought up without root), "
            "and its addresses exist only inside it",
            # state_dir is the platform's own folder under the state dir the user names.
            hint=f"run the command inside it: {ENTER_HINT.format(state=state_dir.parent)}",
        )
    sys.stdout.flush()
    sys.stderr.flush()
    argv = [*enter_argv(pid), sys.executable, *_cli_argv]
    os.execvpe(argv[0], argv, {**os.environ, INSIDE_ENV: str(pid)})


def destroy(state_dir: Path) -> None:
    """Stop the holder; the kernel removes the namespaces once nothing is left inside."""
    pid = holder(state_dir)
    if pid is not None:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    _record(state_dir).unlink(missing_ok=True)
    (state_dir / "kwok-namespace.ready").unlink(missing_ok=True)
