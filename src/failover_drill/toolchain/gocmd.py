"""The go command: where it is, the environment builds run in, and `go mod download -json`."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from failover_drill import obs
from failover_drill.errors import PlatformError

log = obs.get(__name__)


class ToolchainError(PlatformError):
    """The Kubernetes toolchain could not be built or its sources could not be fetched (exit 3)."""


class GoNotFound(ToolchainError):
    """No go command on PATH."""


class BuildFailed(ToolchainError):
    """A go command failed while building a component."""


def go_binary() -> str:
    found = shutil.which("go")
    if found is None:
        raise GoNotFound(
            "the go command is not on PATH: the Kubernetes components (etcd, kube-apiserver, ...) are built from source",
            hint="install Go 1.26 (https://go.dev/dl/) and put its bin directory on PATH, then `make k8s-bin`",
        )
    return found


def go_env() -> dict[str, str]:
    """The build environment: the installed Go only (never a downloaded toolchain), no cgo, no workspace."""
    env = dict(os.environ)
    env["GOTOOLCHAIN"] = "local"
    env["CGO_ENABLED"] = "0"
    env["GOWORK"] = "off"
    env.setdefault("GOFLAGS", "")
    if "-buildvcs" not in env["GOFLAGS"]:
        env["GOFLAGS"] = (env["GOFLAGS"] + " -buildvcs=false").strip()
    return env


def nice_prefix() -> list[str]:
    """Builds yield the CPU to everything else on the machine."""
    nice = shutil.which("nice")
    return [nice, "-n", "19"] if nice else []


@dataclass(frozen=True)
class ModuleSource:
    path: str
    version: str
    dir: Path  # the unpacked source in the module cache (read-only)
    go_mod: Path
    time: str  # release time reported by the proxy, RFC 3339
    commit: str  # the tagged commit when the proxy reports it, else ""


def tail(text: str, lines: int = 30) -> str:
    return "\n".join(text.strip().splitlines()[-lines:])


# What the go command says when the network, not the pin, failed: worth another try. A CI run
# once lost a kwok test to one refused DNS answer on the way to the proxy.
TRANSIENT = (
    "dial tcp",
    "connection refused",
    "connection reset",
    "i/o timeout",
    "TLS handshake timeout",
    "unexpected EOF",
    "429 Too Many Requests",
    "502 Bad Gateway",
    "503 Service Unavailable",
    "504 Gateway Timeout",
)
RETRY_DELAYS_S = (2.0, 6.0)


def mod_download(module: str, version: str, *, timeout_s: float = 900.0) -> ModuleSource:
    """`go mod download -json module@version`: the module's source directory in the module cache.
    A network failure is tried again twice (after 2 s, then 6 s) before it is an error."""
    for delay in RETRY_DELAYS_S:
        try:
            return _mod_download(module, version, timeout_s)
        except ToolchainError as exc:
            if not any(sign in exc.message for sign in TRANSIENT):
                raise
            log.warning("go mod download failed, trying again", module=module, error=exc.message, in_s=delay)
            time.sleep(delay)
    return _mod_download(module, version, timeout_s)


def _mod_download(module: str, version: str, timeout_s: float) -> ModuleSource:
    go = go_binary()
    # Outside any module: a go.mod in the caller's working directory must not matter.
    with tempfile.TemporaryDirectory(prefix="failover-drill-go-") as cwd:
        try:
            out = subprocess.run(
                [*nice_prefix(), go, "mod", "download", "-json", f"{module}@{version}"],
                cwd=cwd,
                env=go_env(),
                capture_output=True,
                text=True,
                timeout=timeout_s,
                check=False,
            )
        except subprocess.TimeoutExpired:
            raise ToolchainError(
                f"`go mod download {module}@{version}` did not finish in {timeout_s:.0f} s",
                hint="check that the Go module proxy is reachable (`go env GOPROXY`)",
            ) from None
    try:
        info: dict[str, Any] = json.loads(out.stdout) if out.stdout.strip() else {}
    except ValueError:
        info = {}
    if out.returncode != 0 or "Error" in info or "Dir" not in info:
        detail = info.get("Error") or tail(out.stderr or out.stdout)
        raise ToolchainError(
            f"cannot download {module}@{version} from the Go module proxy: {detail}",
            hint="check the pin in src/failover_drill/toolchain/pins.toml and that `go env GOPROXY` is reachable",
        )
    time_s, commit = "", ""
    try:
        meta = json.loads(Path(info["Info"]).read_text())
        time_s = str(meta.get("Time", ""))
        commit = str((meta.get("Origin") or {}).get("Hash", ""))
    except (OSError, ValueError, KeyError, TypeError):
        pass
    return ModuleSource(
        path=module,
        version=version,
        dir=Path(info["Dir"]),
        go_mod=Path(info["GoMod"]),
        time=time_s,
        commit=commit,
    )
