"""The sandbox platform: brings up, inspects and tears down the local fleet, and injects faults."""

from __future__ import annotations

import contextlib
import json
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import aiohttp

from failover_drill import obs
from failover_drill.config.manifests import MeshPolicy, load_policy
from failover_drill.config.topology import Topology
from failover_drill.errors import ConfigError, FaultError, PlatformError, StateDamaged
from failover_drill.faults.model import Fault
from failover_drill.platforms import processes as procs
from failover_drill.platforms.base import FleetStatus, LedgerCharge, PlatformEvent, Progress
from failover_drill.platforms.envoy import admin, dataplane
from failover_drill.platforms.envoy.binary import resolve_envoy
from failover_drill.platforms.envoy.layout import Layout, plan_layout
from failover_drill.platforms.fault_table import FaultTable
from failover_drill.platforms.polling import wait_until
from failover_drill.platforms.sandbox import capacity, leftovers
from failover_drill.platforms.sandbox.faults import Fleet, fault_table
from failover_drill.platforms.sandbox.footprint import check_fits
from failover_drill.platforms.sandbox.state import SandboxState
from failover_drill.platforms.service import ledger_db
from failover_drill.platforms.state_file import StateFile
from failover_drill.remote_workers import RemoteWorkers

if TYPE_CHECKING:  # a sandbox never loads the kubernetes client
    from failover_drill.platforms.kube.client import Kube

log = obs.get(__name__)
UP_TIMEOUT_S = 60.0


def _noop(_: str) -> None:
    pass


def _no_in_region_traffic() -> ConfigError:
    return ConfigError(
        "the sandbox's users are on this host: in-region traffic needs a Kubernetes platform",
        field="traffic.origin",
        hint="use traffic.origin: host on the sandbox (the default), or --platform kind",
    )


class SandboxPlatform:
    name = "sandbox"

    def __init__(self, state_dir: Path, topology: Topology | None = None) -> None:
        self.state_dir = state_dir.resolve()
        self.topology = topology
        # (stage, seconds) of the last bring-up, said at its end (issue 20: a slower stage shows by name).
        self.up_timings: list[tuple[str, float]] = []

    # -- state ----------------------------------------------------------------------------------
    @property
    def fleet_file(self) -> Path:
        return self.state_dir / "fleet.json"

    def _state(self) -> StateFile:
        return StateFile(self.state_dir, "sandbox", SandboxState)

    def _load(self) -> dict[str, Any] | None:
        return self._state().load()

    def _save(self, data: dict[str, Any]) -> None:
        self._state().save(data)

    def _locked(self) -> contextlib.AbstractContextManager[None]:
        return self._state().locked()

    def _specs(self, data: dict[str, Any]) -> list[procs.ProcSpec]:
        return [procs.ProcSpec(**p) for p in data["processes"]]

    def layout(self) -> Layout:
        data = self._load()
        if data is None:
            raise PlatformError("the sandbox is not up", hint="run `failover-drill up` first")
        return Layout.from_json(data["layout"])

    # -- lifecycle ------------------------------------------------------------------------------
    def is_up(self) -> bool:
        data = self._load()
        return data is not None and any(procs.alive(s) for s in self._specs(data))

    def mesh(self) -> str:
        data = self._load()
        if data is not None:
            return str(data["mesh"])
        return self.topology.mesh if self.topology else "unknown"

    def entrypoint(self) -> str:
        return self.layout().frontdoor_url()

    def check_in_region_traffic(self) -> None:
        raise _no_in_region_traffic()

    def traffic_workers(
        self, *, region: str, spec_json: str, duration_s: float, workers: int, key_prefix: str
    ) -> RemoteWorkers:
        raise _no_in_region_traffic()

    def analysis_host(self) -> str:
        return "127.0.0.1"  # no controllers; the endpoints still serve whoever asks on this machine

    def region_kubes(self) -> dict[str, Kube]:
        raise ConfigError(
            "Argo Rollouts needs a Kubernetes API, and the sandbox has none",
            field="--platform",
            hint="use --platform kwok (real control planes and the real Argo Rollouts controller, no Docker) or kind",
        )

    def locations(self) -> dict[str, list[str]]:
        lay = self.layout()
        out: dict[str, list[str]] = {r: [] for r in lay.regions}
        for rep in lay.replicas:
            if rep.zone not in out[rep.region]:
                out[rep.region].append(rep.zone)
        return out

    def up(self, progress: Progress | None = None, owner_pid: int | None = None) -> None:
        say = progress or _noop
        if self.topology is None:
            raise PlatformError("no topology given", hint="pass --topology or run from the project folder")
        with self._locked():
            existing = self._load()
            if existing is not None:
                specs = self._specs(existing)
                if all(procs.alive(s) for s in specs):
                    if existing["mesh"] != self.topology.mesh:
                        raise PlatformError(
                            f"the sandbox is up with mesh {existing['mesh']!r}, not {self.topology.mesh!r}",
                            hint="run `failover-drill down` first, or drop --mesh",
                        )
                    say("sandbox already up")
                    return
                say("cleaning up a sandbox that was left half-running")
                self._teardown(existing)
            began = time.monotonic()
            self.up_timings = []
            warning = check_fits(self.topology)
            if warning:
                say(warning)
                log.warning("fleet crowds the machine", detail=warning)
            envoy, version = resolve_envoy()
            policy = load_policy(self.topology.manifests_dir(), self.topology.mesh)
            layout = plan_layout(self.topology, self.state_dir)
            self.prepare_files(layout, policy)
            specs = self._process_specs(layout, policy, envoy)
            data: dict[str, Any] = {
                "version": 1,
                "platform": "sandbox",
                "mesh": self.topology.mesh,
                "topology": str(self.topology.source or ""),
                "envoy": {"path": str(envoy), "version": version},
                "started_wall": time.time(),
                "owner_pid": owner_pid,
                "layout": layout.to_json(),
                "processes": [],
            }
            # Saved before the first spawn, so `down` and `recover` can always find what started.
            self._save(data)
            self.up_timings.append(("config files", time.monotonic() - began))
            try:
                say(f"starting {len(specs)} processes (Envoy {version}, mesh {self.topology.mesh})")
                # The front door starts once the regions can answer its health checks: started
                # with them, its first check failed and the next came a whole interval later.
                regions = [s for s in specs if s.kind != "frontdoor"]
                door = [s for s in specs if s.kind == "frontdoor"]
                deadline = time.monotonic() + UP_TIMEOUT_S
                self._spawn(regions, data)
                self._wait_stages(self._region_stages(layout), regions, layout, deadline, say)
                self._spawn(door, data)
                self._wait_stages(self._door_stages(layout), specs, layout, deadline, say)
            except BaseException:
                self._teardown(data)
                raise
            self._estimate_capacity(layout, specs, say)
        total = time.monotonic() - began
        log.info("sandbox up", seconds=round(total, 2), stages={k: round(v, 2) for k, v in self.up_timings})
        say(f"sandbox up: front door {layout.frontdoor_url()}")
        say(f"up in {total:.1f} s: " + ", ".join(f"{k} {v:.1f} s" for k, v in self.up_timings))

    def prepare_files(self, layout: Layout, policy: MeshPolicy) -> None:
        dataplane.prepare_files(layout, policy)
        for region in layout.regions:
            # The region's database exists (in WAL mode) before its replicas open it together.
            ledger_db.connect(layout.ledger(region)).close()

    def _process_specs(self, layout: Layout, policy: MeshPolicy, envoy: Path) -> list[procs.ProcSpec]:
        py = sys.executable
        logs = layout.logs_dir()
        specs: list[procs.ProcSpec] = []
        for rep in layout.replicas:
            specs.append(
                procs.ProcSpec(
                    name=rep.name,
                    kind="replica",
                    region=rep.region,
                    zone=rep.zone,
                    port=rep.port,
                    log=str(logs / f"{rep.name}.log"),
                    argv=[
                        py,
                        "-m",
                        "failover_drill.platforms.service.replica",
                        "--port",
                        str(rep.port),
                        "--region",
                        rep.region,
                        "--zone",
                        rep.zone,
                        "--name",
                        rep.name,
                        "--ledger",
                        str(layout.ledger(rep.region)),
                    ],
                )
            )
        rd = policy.readiness
        for region in layout.regions:
            argv = [
                py,
                "-m",
                "failover_drill.platforms.sandbox.control_plane",
                "--state",
                str(self.state_dir),
                "--region",
                region,
                "--mesh",
                policy.mesh,
                "--period",
                str(rd.period_s),
                "--timeout",
                str(rd.timeout_s),
                "--failure-threshold",
                str(rd.failure_threshold),
                "--success-threshold",
                str(rd.success_threshold),
            ]
            if not policy.locality_enabled:
                argv.append("--no-locality")
            specs.append(
                procs.ProcSpec(
                    name=f"control-plane-{region}",
                    kind="control-plane",
                    region=region,
                    argv=argv,
                    log=str(logs / f"control-plane-{region}.log"),
                )
            )
        conc = self.topology.sandbox.envoy_concurrency if self.topology else 1
        specs += dataplane.envoy_specs(layout, envoy, conc)
        return specs

    def _check_exits(self, specs: list[procs.ProcSpec]) -> None:
        for s in specs:
            if not procs.alive(s):
                tail = procs.log_tail(s.log)
                hint = "see the log above"
                if "Address already in use" in tail or "address already in use" in tail.lower():
                    hint = "another process took one of the sandbox's ports; retry, or set sandbox.base_port"
                raise PlatformError(f"{s.name} exited during start-up; last lines of {s.log}:\n{tail}", hint=hint)

    def _spawn(self, specs: list[procs.ProcSpec], data: dict[str, Any]) -> None:
        mark = time.monotonic()
        # The replicas fork from one warm interpreter (platforms/forkserver.py): started one by
        # one, each spent ~0.19 s of CPU on imports, most of a two-core machine's bring-up.
        replicas = [s for s in specs if s.kind == "replica"]
        procs.spawn_forked(replicas, fleet=self.state_dir)
        for spec in specs:
            if spec.kind != "replica":
                procs.spawn(spec, fleet=self.state_dir)
            data["processes"].append(vars(spec))
        self._save(data)
        self.up_timings.append((f"starting {len(specs)} processes", time.monotonic() - mark))

    def _region_stages(self, layout: Layout) -> list[tuple[str, Callable[[], bool]]]:
        return [
            ("replicas answering /healthz", lambda: all(self._healthy(r.port) for r in layout.replicas)),
            (
                "Envoy gateways live",
                lambda: all(dataplane.envoy_live(g.admin_port) for g in layout.gateways.values()),
            ),
            (
                "control planes pushed every endpoint",
                lambda: all(self._published_count(layout, r) == len(layout.region_replicas(r)) for r in layout.regions),
            ),
            (
                "gateways loaded every endpoint",
                lambda: all(dataplane.gateway_loaded(layout, r) for r in layout.regions),
            ),
        ]

    @staticmethod
    def _door_stages(layout: Layout) -> list[tuple[str, Callable[[], bool]]]:
        return [
            ("front door live", lambda: dataplane.envoy_live(layout.frontdoor_admin_port)),
            ("front door sees every region healthy", lambda: dataplane.frontdoor_all_healthy(layout)),
            # Envoy may still spread a new cluster's traffic over lower priorities for a moment after
            # its health flags turn green: wait until every client region is served at home.
            (
                "every region serving its own users",
                lambda: all(dataplane.served_home(layout, r) for r in layout.regions),
            ),
        ]

    def _wait_stages(
        self,
        stages: list[tuple[str, Callable[[], bool]]],
        specs: list[procs.ProcSpec],
        layout: Layout,
        deadline: float,
        say: Progress,
    ) -> None:
        for label, check in stages:
            say(f"waiting: {label}")
            mark = time.monotonic()

            def not_yet(check: Callable[[], bool] = check, label: str = label) -> str | None:
                self._check_exits(specs)  # a process that died raises at once: no retry
                try:
                    return None if check() else label
                except OSError:
                    return label

            # One deadline for every stage.
            wait_until(
                not_yet,
                max(0.0, deadline - time.monotonic()),
                0.1,
                lambda label: PlatformError(
                    f"sandbox did not become ready within {UP_TIMEOUT_S:.0f}s (stuck at: {label})",
                    hint=f"look at the logs in {layout.logs_dir()}",
                ),
            )
            self.up_timings.append((label, time.monotonic() - mark))

    @staticmethod
    def _healthy(port: int) -> bool:
        try:
            return admin.request(f"http://127.0.0.1:{port}/healthz", timeout=0.5)[0] == 200
        except OSError:
            return False

    @staticmethod
    def _published_count(layout: Layout, region: str) -> int:
        try:
            return len(json.loads(layout.published(region).read_text())["ready"])
        except (OSError, ValueError, KeyError):
            return 0

    def wait_steady(self, region: str, timeout_s: float = 30.0) -> None:
        """Before a baseline: every process running and the users' region served at home."""
        data = self._load()
        if data is None:
            raise PlatformError("the sandbox is not up", hint="run `failover-drill up` first")
        layout = Layout.from_json(data["layout"])
        dataplane.wait_steady(layout, self._specs(data), region, timeout_s, "sandbox", "failover-drill down")

    def down(self, progress: Progress | None = None) -> None:
        say = progress or _noop
        with self._locked():
            try:
                data = self._load()
            except StateDamaged as exc:
                # The records cannot be trusted: stop what carries this fleet's mark instead.
                say(exc.message)
                salvage = self._state().salvage()
                say(salvage.describe())
                data, left = None, [f"pid {pid}" for pid in salvage.survivors]
            else:
                if data is None:
                    say("sandbox is not up")
                    return
                left = self._teardown(data)
        if left:
            raise PlatformError(f"could not stop: {', '.join(left)}", hint="stop them by hand (kill -9)")
        say("sandbox down: every process stopped")

    def _teardown(self, data: dict[str, Any]) -> list[str]:
        specs = self._specs(data)
        # Front door first so no new traffic enters while the rest stops.
        order = {"frontdoor": 0, "gateway": 1, "control-plane": 2, "replica": 3}
        specs.sort(key=lambda s: order.get(s.kind, 9))
        left = procs.stop_all(specs)
        # A process the state does not name (restarted while the file was being replaced) still
        # carries the fleet's mark: it must not outlive `down` holding a port.
        left += [f"pid {pid}" for pid in procs.stop_marked(self.state_dir)[1]]
        if not left:
            self.fleet_file.unlink(missing_ok=True)
        return left

    def status(self) -> FleetStatus:
        data = self._load()
        if data is None:
            return FleetStatus(up=False, platform="sandbox")
        layout = Layout.from_json(data["layout"])
        comps = []
        for s in self._specs(data):
            state = "frozen" if procs.frozen(s) else ("running" if procs.alive(s) else "stopped")
            comps.append(layout.status_row(s, state))
        return FleetStatus(
            up=any(c["state"] != "stopped" for c in comps),
            platform="sandbox",
            mesh=data["mesh"],
            entrypoint=layout.frontdoor_url(),
            components=comps,
        )

    def plan_lines(self, faults: list[Fault]) -> list[str]:
        return []

    def recover_orphans(self, alive: Callable[[int], bool]) -> list[str]:
        owner = self.owner_pid()
        if owner is not None and not alive(owner) and self.fleet_file.exists():
            self.down()
            return ["stopped a sandbox left behind by a drill that died"]
        return []

    def capacity_warning(self, rate_per_worker: float) -> str | None:
        """Above the sandbox's own clean capacity (`make bench` measures it; else the estimate
        taken at `up`) a drill measures the laptop, not the mesh."""
        found = capacity.known(self.state_dir.parent)
        if found is None:
            return None
        cap, source = found
        if rate_per_worker > 0.8 * cap:
            return (
                f"warning: {rate_per_worker:g} req/s per worker is near or above this machine's clean capacity "
                f"({cap} req/s, {source}): latency here may be the laptop's, not the mesh's; "
                "--set traffic.workers=N spreads the generator over N processes"
            )
        return None

    def _estimate_capacity(self, layout: Layout, specs: list[procs.ProcSpec], say: Progress) -> None:
        """Once per state dir, when `make bench` has not measured it: a burst of payments through
        the front door, a fraction of a second (platforms/sandbox/capacity.py)."""
        home = self.state_dir.parent
        if capacity.known(home) is not None:
            return
        mark = time.monotonic()
        try:
            est = capacity.measure(layout.frontdoor_url(), layout.regions[0], [s.pid for s in specs if s.pid])
        except (OSError, RuntimeError, aiohttp.ClientError) as exc:
            log.warning("capacity not estimated", error=str(exc))
            say(f"could not estimate this machine's capacity ({exc}); drills will not warn near it")
            return
        capacity.save(home, est)
        self.up_timings.append(("capacity estimate", time.monotonic() - mark))
        say(
            f"this machine serves about {est.clean_rps} req/s cleanly through the sandbox "
            f"({est.cpu_ms_per_request:.2f} ms of CPU a payment, {est.cores} cores; `make bench` measures it)"
        )

    def repair_leftovers(self) -> list[str]:
        """Check the live fleet for what a fault leaves behind and repair it, whatever the fault
        ledger says (it may be torn or lost): what was repaired, one line each. A damaged state file
        is repaired the only safe way: every process marked as this fleet's is stopped."""
        with self._locked():
            try:
                data = self._load()
            except StateDamaged as exc:
                return [f"{exc.message}: {self._state().salvage().describe()}"]
            if data is None:
                return []
            found = leftovers.repair(
                Layout.from_json(data["layout"]), self._specs(data), self._respawned, str(self.state_dir)
            )
        if found.failed:
            done = f" (repaired: {'; '.join(found.done)})" if found.done else ""
            raise FaultError(
                f"could not repair: {'; '.join(found.failed)}{done}",
                hint="look at `failover-drill status` and the logs under the state dir; `failover-drill down` stops "
                "the fleet whatever its state",
            )
        return found.done

    def owner_pid(self) -> int | None:
        data = self._load()
        return None if data is None else data.get("owner_pid")

    # -- faults ---------------------------------------------------------------------------------
    def _faults(self) -> FaultTable:
        data = self._load()
        if data is None:
            raise FaultError("the sandbox is not up, nothing to inject into", hint="run `failover-drill up` first")
        specs = {s.name: s for s in self._specs(data)}
        return fault_table(Fleet(Layout.from_json(data["layout"]), specs, self._respawned))

    def _respawned(self, spec: procs.ProcSpec) -> None:
        """Record a restarted process's new pid in the state file (the caller holds the lock)."""
        data = self._load()
        if data is None:
            return
        for p in data["processes"]:
            if p["name"] == spec.name:
                p["pid"], p["start_ticks"] = spec.pid, spec.start_ticks
        self._save(data)

    def plan_fault(self, fault: Fault) -> dict[str, Any]:
        return self._faults().plan(fault)

    def inject(self, fault: Fault, plan: dict[str, Any]) -> dict[str, Any]:
        return self._faults().inject(fault, plan)

    def revert(self, fault: Fault, plan: dict[str, Any]) -> None:
        # Under the state lock, with pids read afresh: two reverters (the drill's finally, the
        # watchdog, `recover`) must never both restart a process and leave an orphan behind.
        with self._locked():
            if self._load() is None:
                return  # the fleet is gone, and every fault with it
            self._faults().revert(fault, plan)

    # -- observations ---------------------------------------------------------------------------
    def events(self, since_wall: float) -> list[PlatformEvent]:
        data = self._load()
        if data is None:
            return []
        return dataplane.read_events(Layout.from_json(data["layout"]), since_wall)

    def ledger(self) -> list[LedgerCharge]:
        layout = self.layout()
        out = []
        for region in layout.regions:
            for c in ledger_db.read_all(layout.ledger(region)):
                out.append(LedgerCharge(c.idempotency_key, c.region, c.zone, c.replica, c.payment_id, c.amount_cents))
        return out
