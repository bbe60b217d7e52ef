"""Binaries from Debian packages ([debs.*] in pins.toml), fetched into the cache, never installed.

`apt-get download PACKAGE=VERSION` fetches the pinned .deb (apt checks the archive's signatures; the
pin's SHA256 is checked here too), `dpkg-deb -x` unpacks it into a scratch folder, and the pinned
binaries are kept in `<cache>/<name>/<version>/bin/` with a `stamp.json` naming the pin. Neither
needs root nor changes the system. An apt whose package lists are empty (a fresh container) gets
lists of its own under `<cache>/apt/`, from the machine's configured sources, and the system's stay
untouched. Fetched again only when the pin changes. Machines without apt get one clear error.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

from failover_drill import obs
from failover_drill.toolchain.build import _locked, cache_root
from failover_drill.toolchain.gocmd import ToolchainError, tail
from failover_drill.toolchain.pins import Deb, Pins, load_pins

log = obs.get(__name__)

Progress = Callable[[str], None]
FETCHER_REVISION = 1
# apt's words when the lists it has do not offer the package or the pinned version.
_NOT_OFFERED = ("Unable to locate package", "was not found", "has no installation candidate", "Can't select")


class DebUnavailable(ToolchainError):
    """A pinned Debian package could not be fetched or unpacked here (exit 3)."""


def _quiet(_: str) -> None:
    pass


def deb_dir(d: Deb) -> Path:
    return cache_root() / d.name / d.version


def deb_binary(d: Deb, binary: str | None = None) -> Path:
    """Where the fetched binary lives (the first pinned one by default)."""
    return deb_dir(d) / "bin" / Path(binary or d.binaries[0]).name


def _stamp(d: Deb) -> Path:
    return deb_dir(d) / "stamp.json"


def up_to_date(d: Deb) -> bool:
    try:
        stamp = json.loads(_stamp(d).read_text())
    except (OSError, ValueError):
        return False
    return (
        stamp.get("pin") == d.fingerprint()
        and stamp.get("fetcher") == FETCHER_REVISION
        and all(os.access(deb_binary(d, b), os.X_OK) for b in d.binaries)
    )


def _hint(d: Deb) -> str:
    return (
        f"on Debian/Ubuntu `apt-get download {d.package}={d.version}` must work (network to the archive); "
        f"elsewhere install {d.package} yourself and point FAILOVER_DRILL_{d.name.upper()} at its binary"
    )


def _tools(d: Deb) -> tuple[str, str]:
    apt, dpkg = shutil.which("apt-get"), shutil.which("dpkg-deb")
    if apt is None or dpkg is None:
        missing = " and ".join(n for n, p in (("apt-get", apt), ("dpkg-deb", dpkg)) if p is None)
        raise DebUnavailable(
            f"{d.package} {d.version} is fetched from Debian's archive, and this machine has no {missing}",
            hint=_hint(d),
        )
    return apt, dpkg


def _private_lists() -> list[str]:
    """apt options for package lists of the cache's own (the system's are not touched)."""
    base = cache_root() / "apt"
    for sub in ("lists/partial", "cache/archives/partial"):
        (base / sub).mkdir(parents=True, exist_ok=True)
    return [
        "-o",
        f"Dir::State::Lists={base / 'lists'}",
        "-o",
        f"Dir::Cache={base / 'cache'}",
        "-o",
        "Debug::NoLocking=1",
    ]


def _apt(argv: list[str], cwd: Path, timeout_s: float = 600.0) -> subprocess.CompletedProcess[str]:
    try:
        return subprocess.run(
            argv,
            cwd=cwd,
            capture_output=True,
            text=True,
            timeout=timeout_s,
            check=False,
            stdin=subprocess.DEVNULL,
            env={**os.environ, "LC_ALL": "C", "DEBIAN_FRONTEND": "noninteractive"},
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise DebUnavailable(f"`{' '.join(argv)}` failed: {exc}") from None


def _download(d: Deb, apt: str, work: Path, progress: Progress) -> Path:
    want = f"{d.package}={d.version}"
    out = _apt([apt, "-q", "download", want], work)
    if out.returncode != 0 and any(w in out.stderr for w in _NOT_OFFERED):
        # Empty or stale lists (a fresh container): lists of our own, from the same sources.
        progress(f"{d.package} {d.version}: apt's lists do not offer it; reading the archive's lists into the cache")
        opts = _private_lists()
        upd = _apt([apt, "-q", *opts, "update"], work)
        if upd.returncode != 0:
            raise DebUnavailable(
                f"apt-get update (into the cache's own lists) failed: {tail(upd.stdout + upd.stderr, 6)}",
                hint=_hint(d),
            )
        out = _apt([apt, "-q", *opts, "download", want], work)
    if out.returncode != 0:
        superseded = any(w in out.stderr for w in _NOT_OFFERED)
        raise DebUnavailable(
            f"apt-get download {want} failed: {tail(out.stderr or out.stdout, 6)}",
            hint=(
                f"the archive no longer offers {d.version}: pin the version `apt-cache policy {d.package}` "
                f"shows, with its SHA256 from `apt-cache show {d.package}`, in src/failover_drill/toolchain/pins.toml"
                if superseded
                else _hint(d)
            ),
        )
    found = sorted(work.glob(f"{d.package}_*.deb"))
    if len(found) != 1:
        raise DebUnavailable(f"apt-get download {want} left {len(found)} .deb files in {work}", hint=_hint(d))
    return found[0]


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def fetch(d: Deb, *, progress: Progress = _quiet) -> float:
    """Fetch and unpack d now (whatever its stamp says); the seconds it took."""
    apt, dpkg = _tools(d)
    start = time.monotonic()
    root = deb_dir(d)
    root.mkdir(parents=True, exist_ok=True)
    _stamp(d).unlink(missing_ok=True)
    progress(f"fetching {d.package} {d.version} from Debian's archive into {root}")
    with tempfile.TemporaryDirectory(prefix=".fetch-", dir=root) as tmp:
        work = Path(tmp)
        deb = _download(d, apt, work, progress)
        got = _sha256(deb)
        if got != d.sha256:
            raise DebUnavailable(
                f"{deb.name} has SHA256 {got}, the pin says {d.sha256}",
                hint="the archive serves another build under this version: check the source, then the pin",
            )
        unpacked = work / "unpacked"
        out = subprocess.run([dpkg, "-x", str(deb), str(unpacked)], capture_output=True, text=True, check=False)
        if out.returncode != 0:
            raise DebUnavailable(f"dpkg-deb -x {deb.name} failed: {tail(out.stderr, 6)}", hint=_hint(d))
        bin_dir = root / "bin"
        bin_dir.mkdir(exist_ok=True)
        for b in d.binaries:
            src = unpacked / b
            if not src.is_file():
                raise DebUnavailable(
                    f"{deb.name} has no {b}",
                    hint="fix `binaries` of this package in src/failover_drill/toolchain/pins.toml",
                )
            dest = deb_binary(d, b)
            shutil.move(str(src), dest.with_suffix(".tmp"))
            os.chmod(dest.with_suffix(".tmp"), 0o755)
            dest.with_suffix(".tmp").replace(dest)
    seconds = time.monotonic() - start
    stamp = {
        "pin": d.fingerprint(),
        "fetcher": FETCHER_REVISION,
        "seconds": round(seconds, 1),
        "fetched_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    _stamp(d).write_text(json.dumps(stamp, indent=1) + "\n")
    log.info("toolchain.deb.fetched", package=d.package, version=d.version, seconds=round(seconds, 1))
    return seconds


@dataclass(frozen=True)
class Fetched:
    deb: Deb
    path: Path
    seconds: float | None  # None: it was already in the cache


def ensure_fetched(
    names: Iterable[str] | None = None, *, pins: Pins | None = None, force: bool = False, progress: Progress = _quiet
) -> dict[str, Fetched]:
    """Each named package's binary (default: all [debs.*]), fetched when missing; name -> it."""
    pins = pins or load_pins()
    out: dict[str, Fetched] = {}
    for d in [pins.deb(n) for n in (names or pins.debs)]:
        seconds: float | None = None
        with _locked(cache_root() / d.name / ".lock"):
            # Another process may have fetched it while we waited for the lock.
            if force or not up_to_date(d):
                seconds = fetch(d, progress=progress)
        out[d.name] = Fetched(d, deb_binary(d), seconds)
    return out


def resolve_binary(name: str, *, pins: Pins | None = None, progress: Progress = _quiet) -> Path:
    """The binary of [debs.<name>]: $FAILOVER_DRILL_<NAME> when set, else the pinned package's
    (fetched on first use). DebUnavailable says why it cannot be had and what to do."""
    env = f"FAILOVER_DRILL_{name.upper().replace('-', '_')}"
    override = os.environ.get(env)
    if override:
        path = Path(override).expanduser()
        if not (path.is_file() and os.access(path, os.X_OK)):
            raise DebUnavailable(
                f"{env}={override} is not an executable file", hint=f"unset {env} to use the pinned one"
            )
        return path
    return ensure_fetched([name], pins=pins, progress=progress)[name].path
