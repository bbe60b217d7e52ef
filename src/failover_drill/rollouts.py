"""Argo Rollouts across the fleet's regions (one controller per region cluster): what each Rollout
is doing, the kubectl plugin's actions on it, and the deploy freeze. The controllers decide; this
only asks them (platforms/kube/rollouts.py: the plugin's own patches) and reports what the API
servers say. The freeze is written down (rollouts-freeze.json in the state directory) so that
thawing resumes exactly what the freeze paused, even from another process or after a crash."""

from __future__ import annotations

import contextlib
import copy
import json
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from failover_drill.config.analysis_templates import (
    RolloutManifests,
    for_mesh,
    load_rollout_manifests,
    rollouts_dir,
    without_traffic_routing,
)
from failover_drill.config.scenario import Release
from failover_drill.config.topology import Topology
from failover_drill.errors import ConfigError, DrillError, PlatformError
from failover_drill.platforms.base import Platform
from failover_drill.platforms.kube import rollouts as ro
from failover_drill.platforms.polling import wait_until
from failover_drill.report import records as journal_records
from failover_drill.report.journal import JournalWriter

if TYPE_CHECKING:
    from failover_drill.platforms.kube.client import Kube

FREEZE_FILE = "rollouts-freeze.json"
DEFAULT_ROLLOUT = "payment-gateway"
DEFAULT_NAMESPACE = "payments"

# The kubectl plugin's verbs: `kubectl argo rollouts abort|retry rollout|promote [--full]|pause`.
ACTIONS: dict[str, tuple[Callable[[Kube, str, str], None], str]] = {
    "abort": (ro.abort, "abort"),
    "retry": (ro.retry, "retry"),
    "promote": (ro.resume, "promotion to the next step"),
    "promote-full": (ro.promote_full, "full promotion"),
    "pause": (ro.pause, "pause"),
}


def check_release(release: Release, users_region: str, topology: Topology) -> RolloutManifests:
    """Before anything starts: the Rollout's manifests load, and every region the release goes to
    is in the topology."""
    manifests = load_rollout_manifests(rollouts_dir(topology))
    for name in release.where(users_region):
        if name not in topology.region_names:
            raise ConfigError(
                f"no region {name!r} in the topology",
                field="rollout.regions",
                hint=f"choose from {', '.join(topology.region_names)}",
            )
    if release.analysis == "prometheus":
        prometheus_template(manifests)
    return manifests


PROMETHEUS_ARGS = ("prometheus-url", "region", "version")


def prometheus_template(manifests: RolloutManifests) -> str:
    """The name of the folder's AnalysisTemplate that asks Prometheus (and takes the arguments the
    drill gives it); ConfigError naming the folder otherwise."""
    for t in manifests.templates():
        spec = t.get("spec") or {}
        if any("prometheus" in ((m or {}).get("provider") or {}) for m in spec.get("metrics") or []):
            name = str(t["metadata"]["name"])
            unknown = [a.get("name") for a in spec.get("args") or [] if a.get("name") not in PROMETHEUS_ARGS]
            if unknown:
                raise ConfigError(
                    f"AnalysisTemplate {name} in {manifests.folder} takes arguments the drill cannot give: "
                    + ", ".join(map(str, unknown)),
                    field="spec.args",
                    hint=f"a release judged through Prometheus passes {', '.join(PROMETHEUS_ARGS)}",
                )
            return name
    raise ConfigError(
        f"{manifests.folder} holds no AnalysisTemplate with a prometheus provider",
        field="rollout.analysis",
        hint="keep payment-gateway-canary-prometheus (clusters/manifests/rollouts/analysistemplates.yaml), "
        "or judge the release with `analysis: web`",
    )


def require_kubernetes(platform: Platform) -> None:
    """Releases and the deploy freeze need a Kubernetes API: the sandbox refuses (ConfigError)
    before anything starts. A Kubernetes platform that is not up yet passes: the drill brings it up
    and asks again when it needs the API."""
    try:
        kubes = platform.region_kubes()
    except PlatformError:
        return
    for kube in kubes.values():
        kube.close()


@dataclass(frozen=True)
class RegionRollout:
    region: str
    state: ro.RolloutState

    def line(self) -> str:
        s = self.state
        flags = [f for f, on in (("aborted", s.aborted), ("paused", s.paused)) if on] + s.pause_reasons
        step = "" if s.step is None else f" step {s.step}"
        extra = f" ({', '.join(flags)})" if flags else ""
        return f"{self.region}: {s.namespace}/{s.name} {s.phase or 'no phase yet'}{step}{extra}"

    def as_json(self) -> dict[str, object]:
        s = self.state
        return {
            "region": self.region,
            "name": s.name,
            "namespace": s.namespace,
            "phase": s.phase,
            "step": s.step,
            "aborted": s.aborted,
            "paused": s.paused,
            "pause_reasons": s.pause_reasons,
            "message": s.message,
        }


@contextlib.contextmanager
def _kubes(platform: Platform, region: str | None) -> Iterator[dict[str, Kube]]:
    kubes = platform.region_kubes()
    try:
        if region is not None and region not in kubes:
            raise ConfigError(
                f"no region {region!r} in the fleet", field="--region", hint=f"choose one of {', '.join(kubes)}"
            )
        yield {r: k for r, k in kubes.items() if region is None or r == region}
    finally:
        for k in kubes.values():
            k.close()


@contextlib.contextmanager
def _kubes_in(platform: Platform, regions: list[str]) -> Iterator[dict[str, Kube]]:
    with _kubes(platform, None) as kubes:
        unknown = [r for r in regions if r not in kubes]
        if unknown:
            raise ConfigError(
                f"no region {unknown[0]!r} in the {platform.name} fleet",
                field="rollout.regions",
                hint=f"choose from {', '.join(kubes)}",
            )
        yield {r: kubes[r] for r in regions}


def status(platform: Platform, region: str | None = None, namespace: str | None = None) -> list[RegionRollout]:
    with _kubes(platform, region) as kubes:
        return [RegionRollout(r, s) for r, kube in kubes.items() for s in ro.rollouts(kube, namespace)]


def act(
    platform: Platform,
    action: str,
    name: str = DEFAULT_ROLLOUT,
    namespace: str = DEFAULT_NAMESPACE,
    region: str | None = None,
) -> list[str]:
    """One of ACTIONS on the Rollout in every region that has it (or only region's)."""
    if action not in ACTIONS:
        raise ConfigError(
            f"unknown rollout action {action!r}", field="action", hint=f"choose one of {', '.join(ACTIONS)}"
        )
    send, what = ACTIONS[action]
    out = []
    with _kubes(platform, region) as kubes:
        found = {r: ro.rollout(kube, name, namespace) for r, kube in kubes.items()}
        where = [r for r, state in found.items() if state is not None]
        if not where:
            present = sorted({f"{s.namespace}/{s.name}" for kube in kubes.values() for s in ro.rollouts(kube)})
            raise ConfigError(
                f"no Rollout {namespace}/{name} in {region or 'any region'}",
                field="--rollout",
                hint=f"Rollouts in the fleet: {', '.join(present)}" if present else "the fleet has no Rollout yet",
            )
        for r in where:
            send(kubes[r], name, namespace)
            out.append(f"{r}: asked the controller for the {what} of {namespace}/{name}")
    return out


@dataclass(frozen=True)
class FreezeRecord:
    """One freeze as written down: what it paused, by whom (None: a person, through the CLI or
    Chaos Toolkit; a pid: a drill, whose freeze `recover` lifts if the drill died) and where."""

    path: Path
    held: dict[str, list[str]]  # region -> namespace/name
    owner_pid: int | None
    platform: str | None


def _freeze_path(state_dir: Path, owner_pid: int | None) -> Path:
    return state_dir / (FREEZE_FILE if owner_pid is None else f"rollouts-freeze-{owner_pid}.json")


def _read(path: Path) -> FreezeRecord:
    try:
        data = json.loads(path.read_text())
        held = {str(r): [str(x) for x in refs] for r, refs in data["frozen"].items()}
        owner = data.get("owner_pid")
        return FreezeRecord(path, held, None if owner is None else int(owner), data.get("platform"))
    except (ValueError, KeyError, TypeError, AttributeError):
        raise PlatformError(
            f"{path} is damaged: which rollouts the freeze paused is unknown",
            hint="`failover-drill rollouts status` shows which are paused; resume each with "
            "`failover-drill rollouts promote --rollout NAME`, then delete the file",
        ) from None


def records(state_dir: Path) -> list[FreezeRecord]:
    if not state_dir.is_dir():
        return []
    return [_read(p) for p in sorted(state_dir.glob("rollouts-freeze*.json"))]


def frozen(state_dir: Path) -> dict[str, list[str]]:
    """region -> namespace/name of the Rollouts every freeze holds (what thaw will resume)."""
    out: dict[str, set[str]] = {}
    for rec in records(state_dir):
        for r, refs in rec.held.items():
            out.setdefault(r, set()).update(refs)
    return {r: sorted(refs) for r, refs in out.items()}


def _write(state_dir: Path, held: dict[str, list[str]], owner_pid: int | None, platform: str) -> None:
    path = _freeze_path(state_dir, owner_pid)
    if not any(held.values()):
        path.unlink(missing_ok=True)
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps({"frozen": held, "owner_pid": owner_pid, "platform": platform}, indent=2) + "\n")
    os.replace(tmp, path)


def freeze(
    platform: Platform, state_dir: Path, namespace: str | None = None, owner_pid: int | None = None
) -> dict[str, list[str]]:
    """The deploy freeze: pause every Rollout in flight in every region, and write down which
    (one record per owner). What this call paused, region -> namespace/name."""
    path = _freeze_path(state_dir, owner_pid)
    held = _read(path).held if path.exists() else {}
    paused: dict[str, list[str]] = {}
    with _kubes(platform, None) as kubes:
        for r, kube in kubes.items():
            got = ro.freeze(kube, namespace)
            if got:
                paused[r] = got
            held[r] = sorted(set(held.get(r, [])) | set(got))
            # Written after each region: a crash midway still leaves a record of what was paused.
            _write(state_dir, held, owner_pid, platform.name)
    return paused


def freeze_lines(paused: dict[str, list[str]]) -> list[str]:
    return [f"{r}: paused {ref} (in flight)" for r, refs in paused.items() for ref in refs]


def _exists(kube: Kube, ref: str) -> bool:
    namespace, name = ref.split("/", 1)
    return ro.rollout(kube, name, namespace) is not None


def thaw(platform: Platform, state_dir: Path, which: Callable[[FreezeRecord], bool] = lambda _: True) -> list[str]:
    """Lift the freezes which() picks (all by default): resume exactly what they paused (a step's
    own pause stays), and delete their records."""
    picked = [rec for rec in records(state_dir) if which(rec)]
    out: list[str] = []
    # Asked even with nothing to thaw: a platform without Kubernetes says so (exit 2), not "nothing".
    with _kubes(platform, None) as kubes:
        for rec in picked:
            for r, refs in rec.held.items():
                kube = kubes.get(r)
                if kube is None:
                    out.append(f"{r}: no such region in the {platform.name} fleet, {', '.join(refs)} left as they are")
                    continue
                present = [ref for ref in refs if _exists(kube, ref)]
                ro.thaw(kube, present)
                out += [f"{r}: resumed {ref}" for ref in present]
                out += [f"{r}: {ref} is gone, nothing to resume" for ref in sorted(set(refs) - set(present))]
            rec.path.unlink(missing_ok=True)
    return out


# -- a release during a drill (scenario `rollout:`) --------------------------------------------
RELEASE_FILE = "rollouts-release-{pid}.json"
RELEASE_TIMEOUT_S = 240.0


def rollout_object(
    manifests: RolloutManifests,
    region: str,
    sli_url: str,
    version: str = "stable",
    fail_pct: float = 0.0,
    *,
    mesh: str,
    prometheus_url: str | None = None,
) -> dict[str, Any]:
    """The repo's Rollout for one region on the fleet's mesh (for_mesh): its pods told their
    region, version and failure share, its analysis told where the drill's SLIs are and which
    region and version to judge. With prometheus_url its analysis steps name the prometheus
    template instead, told that Prometheus' address."""
    found = [o for o in manifests.objects if o.get("kind") == ro.ROLLOUT]
    if len(found) != 1:
        raise ConfigError(
            f"{manifests.folder} holds {len(found)} Rollouts; a release needs exactly one",
            hint="keep the payment-gateway Rollout (clusters/manifests/rollouts/rollout.yaml)",
        )
    obj = for_mesh(copy.deepcopy(found[0]), mesh)
    values = {"REGION": region, "VERSION": version, "FAIL_PCT": f"{fail_pct:g}"}
    for c in obj["spec"]["template"]["spec"]["containers"]:
        for e in c.get("env") or []:
            if e.get("name") in values:
                e["value"] = values[e["name"]]
    args = {"sli-url": sli_url, "region": region, "version": version}
    for step in obj["spec"]["strategy"].get("canary", {}).get("steps") or []:
        if prometheus_url is not None and "analysis" in step:
            values = {"prometheus-url": prometheus_url, "region": region, "version": version}
            step["analysis"] = {
                "templates": [{"templateName": prometheus_template(manifests)}],
                "args": [{"name": k, "value": v} for k, v in values.items()],
            }
            continue
        for arg in (step.get("analysis") or {}).get("args") or []:
            if arg.get("name") in args:
                arg["value"] = args[arg["name"]]
    return obj


def _ref(obj: dict[str, Any]) -> tuple[str, str]:
    return str(obj["metadata"]["name"]), str(obj["metadata"].get("namespace") or DEFAULT_NAMESPACE)


def prepare_release(
    platform: Platform,
    manifests: RolloutManifests,
    sli_url: str,
    say: Callable[[str], None],
    regions: list[str],
    timeout_s: float = RELEASE_TIMEOUT_S,
) -> dict[str, dict[str, Any]]:
    """The stable Rollout in each of the release's regions, Healthy, before the drill's clock
    starts (a release left by an earlier drill is rolled back to stable by the same apply).
    region -> the stable object.

    On Istio the VirtualService comes last in a region that has none yet: until the Rollout's
    pods are ready, a route to its stable Service would leave the region's users with no
    endpoint at all. So the Rollout first comes up without traffic routing, then takes it."""
    mesh = platform.mesh()
    stable: dict[str, dict[str, Any]] = {}
    with _kubes_in(platform, regions) as kubes:
        routing = manifests.routing(mesh)
        services = [o for o in routing if o["kind"] == "Service"]
        later: list[str] = []
        for region, kube in kubes.items():
            stable[region] = rollout_object(manifests, region, sli_url, mesh=mesh)
            if routing and not all(kube.get(o["apiVersion"], o["kind"], *_ref(o)) for o in routing):
                later.append(region)
                kube.apply(manifests.templates() + services + [without_traffic_routing(copy.deepcopy(stable[region]))])
            else:
                kube.apply(manifests.templates() + routing + [stable[region]])
        say(f"waiting for the payment-gateway Rollout to be Healthy on its stable version in {len(kubes)} region(s)")
        _wait_healthy(kubes, stable, timeout_s)
        if later:
            say(
                f"routing users through the VirtualService in {', '.join(later)} (Argo Rollouts' Istio traffic routing)"
            )
            for region in later:
                kubes[region].apply([*routing, stable[region]])
            _wait_healthy({r: kubes[r] for r in later}, stable, timeout_s)
    return stable


def _wait_healthy(kubes: dict[str, Kube], stable: dict[str, dict[str, Any]], timeout_s: float) -> None:
    def not_yet() -> str | None:
        states = {r: ro.rollout(kube, *_ref(stable[r])) for r, kube in kubes.items()}
        waiting = {r: s for r, s in states.items() if s is None or not s.observed or s.phase != "Healthy" or s.aborted}
        return "; ".join(f"{r}: {s.phase if s else 'absent'}" for r, s in waiting.items()) or None

    wait_until(
        not_yet,
        timeout_s,
        1.0,
        lambda seen: PlatformError(
            f"the payment-gateway Rollout did not become Healthy within {timeout_s:g} s: {seen}",
            hint="`failover-drill rollouts status` shows each region's; the controller's log is in the state dir",
        ),
    )


def _release_path(state_dir: Path, owner_pid: int) -> Path:
    return state_dir / RELEASE_FILE.format(pid=owner_pid)


def start_release(
    platform: Platform,
    manifests: RolloutManifests,
    release: Release,
    sli_url: str,
    stable: dict[str, dict[str, Any]],
    state_dir: Path,
    owner_pid: int,
    prometheus_url: str | None = None,
) -> list[tuple[str, str]]:
    """The new version applied in each region of `stable` (region, what was done). What to go back to is written down first, so
    that the drill's end, or `recover` if the drill dies, can restore the stable version."""
    path = _release_path(state_dir, owner_pid)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps({"owner_pid": owner_pid, "platform": platform.name, "stable": stable}, indent=2))
    os.replace(tmp, path)
    out = []
    with _kubes_in(platform, list(stable)) as kubes:
        for region, kube in kubes.items():
            kube.apply(
                [
                    rollout_object(
                        manifests,
                        region,
                        sli_url,
                        release.version,
                        release.fail_pct,
                        mesh=platform.mesh(),
                        prometheus_url=prometheus_url,
                    )
                ]
            )
            out.append((region, f"released payment-gateway {release.version}"))
    return out


def promote_region(
    platform: Platform, region: str, name: str = DEFAULT_ROLLOUT, namespace: str = DEFAULT_NAMESPACE
) -> None:
    with _kubes(platform, region) as kubes:
        ro.promote_full(kubes[region], name, namespace)


@dataclass(frozen=True)
class ReleaseFile:
    """A release's record (rollouts-release-<pid>.json): whose, on which platform, what to restore."""

    path: Path
    owner_pid: int
    platform: str
    stable: dict[str, dict[str, Any]]


def release_files(state_dir: Path) -> list[ReleaseFile]:
    """Every release record in the state dir; a damaged one names itself (and the way out)."""
    out = []
    paths = sorted(state_dir.glob(RELEASE_FILE.format(pid="*"))) if state_dir.is_dir() else []
    for path in paths:
        try:
            data = json.loads(path.read_text())
            owner = int(data["owner_pid"])
            stable = {str(r): dict(o) for r, o in data["stable"].items()}
            out.append(ReleaseFile(path, owner, str(data.get("platform") or "kwok"), stable))
        except (ValueError, KeyError, TypeError, AttributeError):
            raise PlatformError(
                f"{path} is damaged: the stable version to restore is unknown",
                hint="`failover-drill rollouts abort` returns every region to its stable version; then delete the file",
            ) from None
    return out


def restore_stable(platform: Platform, state_dir: Path, owner_pid: int) -> list[str]:
    """Put back the stable version the releases of owner_pid replaced (the controller rolls back to
    its stable ReplicaSet at once), and drop their records."""
    out: list[str] = []
    for rec in release_files(state_dir):
        if rec.owner_pid != owner_pid:
            continue
        with _kubes(platform, None) as kubes:
            for region, obj in rec.stable.items():
                kube = kubes.get(region)
                if kube is None:
                    out.append(f"{region}: no such region in the {platform.name} fleet, its release left as it is")
                    continue
                kube.apply([obj])
                out.append(f"{region}: payment-gateway back to its stable version (a release by drill pid {owner_pid})")
        rec.path.unlink(missing_ok=True)
    return out


@dataclass(frozen=True)
class ReleaseNews:
    """Something the release did, as the drill's timeline records it (source failover-drill)."""

    kind: str  # release-aborted, release-promote, release-healthy, release-outcome
    region: str
    detail: str


class ReleaseWatch:
    """Follows the release in every region from the API servers (polled by the drill, off its
    event loop): when a controller aborts it, when it is fully out, and, for a release that
    asks for it, the full promotion once analysis holds the canary at its pause step."""

    def __init__(
        self, platform: Platform, release: Release, regions: list[str], ref: tuple[str, str] | None = None
    ) -> None:
        self.platform = platform
        self.release = release
        self.regions = regions
        # (name, namespace) of the Rollout released: the manifest's, which need not be the default.
        self.ref = ref or (DEFAULT_ROLLOUT, DEFAULT_NAMESPACE)
        self.moving: set[str] = set()  # seen off Healthy since the release: a Healthy after that is the new version
        self.final: dict[str, str] = {}  # region -> aborted | healthy
        self.promoted: set[str] = set()
        self.held: set[str] = set()  # spec.paused seen (a deploy freeze or a person), not yet lifted
        self.last: dict[str, ro.RolloutState | None] = {}
        self.unreadable: set[str] = set()

    def _read(self) -> dict[str, ro.RolloutState | None]:
        """Each region's Rollout; a region whose API server does not answer (the fault may be
        its loss) keeps what was read last."""
        out: dict[str, ro.RolloutState | None] = {}
        with _kubes_in(self.platform, self.regions) as kubes:
            for region, kube in kubes.items():
                try:
                    out[region] = ro.rollout(kube, *self.ref)
                except PlatformError:
                    out[region] = self.last.get(region)
                    self.unreadable.add(region)
        return out

    def poll(self) -> list[ReleaseNews]:
        news: list[ReleaseNews] = []
        self.unreadable = set()
        states = self._read()
        self.last = states
        for region, s in states.items():
            if s is None or region in self.final or region in self.unreadable or not s.observed:
                continue
            if s.aborted:
                self.final[region] = "aborted"
                news.append(ReleaseNews("release-aborted", region, s.message or "aborted by the controller"))
                continue
            if s.paused and region not in self.held:
                self.held.add(region)
                news.append(ReleaseNews("release-held", region, f"paused (spec.paused) at step {s.step}"))
            elif not s.paused and region in self.held:
                self.held.discard(region)
                news.append(ReleaseNews("release-resumed", region, f"unpaused at step {s.step}"))
            if s.phase != "Healthy":
                self.moving.add(region)
            elif region in self.moving:
                self.final[region] = "healthy"
                news.append(ReleaseNews("release-healthy", region, f"{self.release.version} fully rolled out"))
                continue
            # Never while spec.paused: a deploy freeze (or a person) holds it, and a full promotion
            # would walk through the hold the freeze exists to keep.
            if (
                self.release.promote
                and region not in self.promoted
                and not s.paused
                and "CanaryPauseStep" in s.pause_reasons
            ):
                promote_region(self.platform, region, *self.ref)
                self.promoted.add(region)
                news.append(
                    ReleaseNews("release-promote", region, f"analysis passed at step {s.step}: full promotion asked")
                )
        return news

    def done(self) -> bool:
        return (
            bool(self.last)
            and not self.unreadable
            and all(r in self.final for r, s in self.last.items() if s is not None)
        )

    def outcome(self) -> list[ReleaseNews]:
        """Each region's state at the end of the drill's phases."""
        out = []
        for region, s in self.last.items():
            if s is None:
                out.append(ReleaseNews("release-outcome", region, "no Rollout"))
                continue
            state = self.final.get(region, "unreachable" if region in self.unreadable else "in flight")
            out.append(ReleaseNews("release-outcome", region, f"{state}: {s.phase or 'no phase'}, step {s.step}"))
        return out


class ReleaseRun:
    """A release during a drill or a Chaos Toolkit session: the stable version made ready, the new
    one started, followed until every region's is aborted or fully out, and the stable version put
    back at the end; each step written to the run's journal on its time axis (now())."""

    def __init__(
        self,
        platform: Platform,
        manifests: RolloutManifests,
        release: Release,
        *,
        sli_url: str,
        state_dir: Path,
        owner_pid: int,
        journal: JournalWriter,
        now: Callable[[], float],
        say: Callable[[str], None],
        regions: list[str],
        stable: dict[str, dict[str, Any]] | None = None,
        prometheus_url: str | None = None,
    ) -> None:
        self.regions = regions
        self.prometheus_url = prometheus_url
        self.platform, self.manifests, self.release = platform, manifests, release
        self.sli_url, self.state_dir, self.owner_pid = sli_url, state_dir, owner_pid
        self.journal, self.now, self.say = journal, now, say
        # region -> the stable Rollout (prepare_release's), if made ready already
        self.stable: dict[str, dict[str, Any]] = dict(stable or {})
        self.watch: ReleaseWatch | None = None
        self.ended = False

    def _event(self, kind: str, region: str | None, detail: str) -> None:
        at = round(self.now(), 3)
        self.journal.write(
            journal_records.PlatformEventRecord(at, "failover-drill", kind, region, None, detail).to_json()
        )

    def prepare(self) -> None:
        self.stable = prepare_release(self.platform, self.manifests, self.sli_url, self.say, self.regions)

    def start(self) -> None:
        rel = self.release
        if not self.stable:
            self.prepare()
        lines = start_release(
            self.platform,
            self.manifests,
            rel,
            self.sli_url,
            self.stable,
            self.state_dir,
            self.owner_pid,
            self.prometheus_url,
        )
        at = round(self.now(), 3)
        self.journal.write(
            journal_records.ReleaseRecord(at, rel.version, rel.fail_pct, rel.promote, rel.analysis).to_json()
        )
        for region, line in lines:
            self._event("release", region, f"{rel.label()}: {line}")
        self.say(f"{rel.label()} started")
        # Every region's object comes from the one manifest: one name.
        ref = _ref(next(iter(self.stable.values())))
        self.watch = ReleaseWatch(self.platform, rel, list(self.stable), ref)

    def poll(self) -> None:
        if self.watch is None or self.ended:
            return
        try:
            news = self.watch.poll()
        except DrillError as exc:
            # The fleet's API may be what the fault took away: try again at the next poll.
            self.say(f"could not read the release's state: {exc}")
            return
        for n in news:
            self._event(n.kind, n.region, n.detail)
            self.say(f"{n.region}: {n.kind.removeprefix('release-')}: {n.detail}")

    def done(self) -> bool:
        return self.watch is not None and self.watch.done()

    def end(self) -> None:
        """Each region's state at the end of the run, once."""
        if self.watch is None or self.ended:
            return
        self.ended = True
        for n in self.watch.outcome():
            self._event(n.kind, n.region, n.detail)

    def restore(self) -> list[str]:
        pid = self.owner_pid
        return restore_stable(self.platform, self.state_dir, pid)
