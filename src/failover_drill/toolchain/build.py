"""Build the pinned Kubernetes components with the go command, into a cache outside the repository.

Layout, per component: `<cache>/k8s/<component>-<version>/` holding `bin/<component>`, the generated
build module (`module/go.mod`, `go.sum`), `build.log` (everything go printed) and `stamp.json`
(the pin it was built from). A component is rebuilt only when its pin no longer matches its stamp.
`<cache>` is $FAILOVER_DRILL_CACHE, else $XDG_CACHE_HOME/failover-drill, else ~/.cache/failover-drill.
The Go module and build caches are go's own (GOMODCACHE, GOCACHE), also outside the repository.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

from failover_drill import obs
from failover_drill.toolchain import gomod
from failover_drill.toolchain.gocmd import (
    BuildFailed,
    ToolchainError,
    go_binary,
    go_env,
    mod_download,
    nice_prefix,
    tail,
)
from failover_drill.toolchain.pins import Component, Pins, load_pins, split_version

log = obs.get(__name__)

# Bump when the build module or the go invocation changes in a way that needs fresh binaries.
BUILDER_REVISION = 1

Progress = Callable[[str], None]


def stderr_progress(message: str) -> None:
    sys.stderr.write(f"[k8s-bin] {message}\n")
    sys.stderr.flush()


def cache_root() -> Path:
    env = os.environ.get("FAILOVER_DRILL_CACHE")
    if env:
        return Path(env).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME")
    base = Path(xdg).expanduser() if xdg else Path.home() / ".cache"
    return base / "failover-drill"


def component_dir(c: Component) -> Path:
    return cache_root() / "k8s" / f"{c.name}-{c.version}"


def binary_path(c: Component) -> Path:
    return component_dir(c) / "bin" / c.name


def _stamp_path(c: Component) -> Path:
    return component_dir(c) / "stamp.json"


def read_stamp(c: Component) -> dict[str, object] | None:
    try:
        data: dict[str, object] = json.loads(_stamp_path(c).read_text())
    except (OSError, ValueError):
        return None
    return data


def up_to_date(c: Component) -> bool:
    stamp = read_stamp(c)
    exe = binary_path(c)
    return (
        stamp is not None
        and stamp.get("pin") == c.fingerprint()
        and stamp.get("builder") == BUILDER_REVISION
        and exe.is_file()
        and os.access(exe, os.X_OK)
    )


def _fmt_elapsed(seconds: float) -> str:
    m, s = divmod(int(seconds), 60)
    return f"{m}m{s:02d}s" if m else f"{s}s"


def ldflags(c: Component, build_date: str, commit: str) -> str:
    major, minor, _rest = split_version(c.version)
    values = {
        "version": c.version,
        "semver": c.version.removeprefix("v"),
        "major": str(major),
        "minor": str(minor),
        "build_date": build_date,
        "commit": commit,
    }
    flags = []
    for template in c.ldflags:
        if "{commit}" in template and not commit:
            continue
        if "{build_date}" in template and not build_date:
            continue
        flags.append(template.format(**values))
    # -s -w: no symbol table or DWARF, as upstream release builds (smaller, faster to link).
    return " ".join(["-s", "-w", *flags])


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    """One builder per component at a time (a test and `make k8s-bin` may run together)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


class _Ticker:
    """Reports the step under way and the elapsed time every `every_s` seconds while a build runs."""

    def __init__(self, c: Component, progress: Progress, every_s: float) -> None:
        self.c = c
        self.progress = progress
        self.every_s = every_s
        self.start = time.monotonic()
        self.step = "starting"
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True, name=f"k8s-bin-{c.name}")

    def __enter__(self) -> _Ticker:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    @property
    def elapsed(self) -> float:
        return time.monotonic() - self.start

    def set_step(self, step: str) -> None:
        self.step = step
        self.progress(f"{self.c.name} {self.c.version}: {step} ({_fmt_elapsed(self.elapsed)})")

    def _run(self) -> None:
        while not self._stop.wait(self.every_s):
            self.progress(f"{self.c.name} {self.c.version}: {self.step}, {_fmt_elapsed(self.elapsed)} elapsed")


def _run_go(c: Component, argv: list[str], cwd: Path, log_path: Path, what: str) -> None:
    with log_path.open("a") as fh:
        fh.write(f"\n$ {shlex.join(argv)}\n")
        fh.flush()
        start = fh.tell()
        try:
            rc = subprocess.run(
                [*nice_prefix(), *argv],
                cwd=cwd,
                env=go_env(),
                stdin=subprocess.DEVNULL,
                stdout=fh,
                stderr=subprocess.STDOUT,
                check=False,
            ).returncode
        except OSError as exc:
            raise BuildFailed(f"{c.name} {c.version}: cannot run {argv[0]} ({exc})") from None
    if rc != 0:
        with log_path.open() as fh:
            fh.seek(start)
            output = fh.read()
        raise BuildFailed(
            f"building {c.name} {c.version} failed at `{what}` (exit {rc}); last lines of go's output:\n"
            + tail(output, 25),
            hint=f"full log: {log_path}; check the pin in src/failover_drill/toolchain/pins.toml",
        )


def _go_version(go: str) -> str:
    out = subprocess.run([go, "env", "GOVERSION"], capture_output=True, text=True, env=go_env(), check=False)
    return out.stdout.strip()


def build_component(c: Component, *, progress: Progress = stderr_progress, every_s: float = 30.0) -> float:
    """Build one component now (whatever its stamp says); returns the seconds it took."""
    go = go_binary()
    root = component_dir(c)
    module_dir = root / "module"
    bin_dir = root / "bin"
    log_path = root / "build.log"
    module_dir.mkdir(parents=True, exist_ok=True)
    bin_dir.mkdir(parents=True, exist_ok=True)
    _stamp_path(c).unlink(missing_ok=True)
    log_path.write_text(f"# {c.name} {c.version} from {c.module} ({c.package})\n")
    log.info("toolchain.build.start", component=c.name, version=c.version, dir=str(root))
    with _Ticker(c, progress, every_s) as ticker:
        ticker.set_step(f"fetching {c.module}@{c.version}")
        src = mod_download(c.module, c.version)
        upstream = gomod.parse(src.go_mod.read_text())
        try:
            text = gomod.render_build_module(c.name, c.module, c.version, c.package, upstream)
        except ValueError as exc:
            raise BuildFailed(f"{c.name} {c.version}: {exc}") from None
        go_mod = module_dir / "go.mod"
        if not go_mod.exists() or go_mod.read_text() != text:
            go_mod.write_text(text)
        ticker.set_step("resolving dependencies (go mod tidy)")
        _run_go(c, [go, "mod", "tidy"], module_dir, log_path, "go mod tidy")
        ticker.set_step("compiling and linking (go build)")
        tmp = bin_dir / f".{c.name}.tmp"
        _run_go(
            c,
            [go, "build", "-trimpath", "-ldflags", ldflags(c, src.time, src.commit), "-o", str(tmp), c.package],
            module_dir,
            log_path,
            "go build",
        )
        tmp.replace(binary_path(c))
        seconds = ticker.elapsed
        stamp = {
            "pin": c.fingerprint(),
            "builder": BUILDER_REVISION,
            "go": _go_version(go),
            "commit": src.commit,
            "seconds": round(seconds, 1),
            "built_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        }
        _stamp_path(c).write_text(json.dumps(stamp, indent=1) + "\n")
        ticker.set_step(f"built {binary_path(c)}")
    log.info("toolchain.build.done", component=c.name, version=c.version, seconds=round(seconds, 1))
    return seconds


@dataclass(frozen=True)
class Built:
    component: Component
    path: Path
    seconds: float | None  # None: it was already up to date


def ensure_built(
    names: Iterable[str] | None = None,
    *,
    pins: Pins | None = None,
    force: bool = False,
    progress: Progress = stderr_progress,
    every_s: float = 30.0,
) -> dict[str, Built]:
    """Each named component (default: all), built when missing or pinned differently; name -> binary."""
    pins = pins or load_pins()
    wanted = [pins.component(n) for n in (names or pins.components)]
    out: dict[str, Built] = {}
    stale = [c for c in wanted if force or not up_to_date(c)]
    if stale:
        go_binary()  # fail before anything else when go is missing
        progress(
            f"building {', '.join(f'{c.name} {c.version}' for c in stale)} with go into {cache_root() / 'k8s'} "
            "(a cold build takes tens of minutes; later runs reuse it)"
        )
    for c in wanted:
        seconds: float | None = None
        with _locked(cache_root() / "k8s" / f".{c.name}.lock"):
            # Another process may have finished this build while we waited for the lock.
            if force or not up_to_date(c):
                seconds = build_component(c, progress=progress, every_s=every_s)
        out[c.name] = Built(c, binary_path(c), seconds)
    return out


def paths(names: Iterable[str] | None = None, *, pins: Pins | None = None) -> dict[str, Path]:
    """Paths of built components, building what is missing."""
    return {name: b.path for name, b in ensure_built(names, pins=pins).items()}


_SEMVER = re.compile(r"v?(\d+\.\d+\.\d+(?:-[0-9A-Za-z.-]+)?)")


def reported_version(c: Component, exe: Path | None = None) -> str:
    """The version the binary itself reports (`--version`), as vX.Y.Z."""
    exe = exe or binary_path(c)
    try:
        out = subprocess.run(
            [str(exe), "--version"], capture_output=True, text=True, timeout=30, check=False, stdin=subprocess.DEVNULL
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise ToolchainError(f"{exe} --version failed ({exc})") from None
    text = out.stdout + out.stderr
    m = _SEMVER.search(text)
    if out.returncode != 0 or not m:
        raise ToolchainError(f"{exe} --version printed no version (exit {out.returncode}): {tail(text, 5)}")
    return "v" + m[1]


def remove(c: Component) -> None:
    """Forget a component's build (its directory in the cache)."""
    shutil.rmtree(component_dir(c), ignore_errors=True)
