"""A drill, phase by phase: warm-up, baseline, inject, observe, revert, observe recovery, verdict.

Faults are written to the ledger before injection and reverted on every way out (normal end,
exception, Ctrl-C, SIGTERM); a watchdog process reverts them if this process dies.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import json
import os
import secrets
import signal
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from failover_drill import cpu_load, obs, rollouts, watchdog
from failover_drill.clock import Anchor, Clock, MonotonicClock
from failover_drill.config.analysis_templates import RolloutManifests
from failover_drill.config.scenario import Scenario
from failover_drill.config.topology import Topology
from failover_drill.errors import (
    EXIT_INCONCLUSIVE,
    EXIT_INTERRUPTED,
    EXIT_PASSED,
    EXIT_VERDICT_FAILED,
    ConfigError,
    DrillError,
    Interrupted,
    PlatformError,
)
from failover_drill.fault_runner import FaultRunner
from failover_drill.faults.catalogue import check_schedule, resolve
from failover_drill.faults.ledger import FaultLedger, ledger_path
from failover_drill.faults.model import Fault, dump_fault
from failover_drill.measure.live_sli import ALL, LiveSli, bound_server
from failover_drill.measure.payments import reconcile
from failover_drill.measure.prometheus import scraping
from failover_drill.measure.timeline import pct
from failover_drill.ownership import FleetOwnership
from failover_drill.platforms.base import Platform
from failover_drill.predict import scenario as predictions
from failover_drill.recovery import revert_open_faults
from failover_drill.report import journal as journal_mod
from failover_drill.report import records
from failover_drill.report.history import History
from failover_drill.report.result import timing_out
from failover_drill.report.rundir import finish_run, new_run_dir
from failover_drill.traffic import gc_quiet
from failover_drill.traffic.client import PaymentClient
from failover_drill.traffic.generator import GeneratorStats, OpenLoopGenerator
from failover_drill.traffic.remote_pool import RemoteWorkerPool
from failover_drill.traffic.samples import DROPPED, Sample, payment_outcomes
from failover_drill.traffic.schedule import Schedule
from failover_drill.traffic.workers import WorkerPool

log = obs.get(__name__)
# A deploy freeze is lifted once payments over this many seconds meet the SLO after the faults:
# short, so the release it holds gets the recovery phase to go on in; whole seconds of traffic.
RECOVERED_WINDOW_S = 5.0


@dataclass
class LiveView:
    """What the progress display shows; the CLI renders it."""

    phase: str = "starting"
    elapsed_s: float = 0.0
    total_s: float = 0.0
    sent: int = 0
    ok_ratio: float | None = None
    p99_ms: float | None = None
    served: dict[str, float] = field(default_factory=dict)
    # The drill's error budget burned so far (% of the SLO period's), counted as the report counts
    # it: failed requests scheduled from the baseline on. A game day's screen adds it to the day's.
    budget_pct: float = 0.0
    # When the current phase ends, on the drill's axis (elapsed_s counts towards it).
    phase_end_s: float = 0.0
    message: str = ""


@dataclass
class DrillOutcome:
    run_dir: Path
    result: dict[str, Any]
    exit_code: int


Progress = Callable[[LiveView], None]


def _noop(_: LiveView) -> None:
    pass


class _Recent:
    """The last second of completed samples, for the live view only (not for measurement)."""

    def __init__(self) -> None:
        self.items: collections.deque[tuple[float, Sample]] = collections.deque()

    def add(self, now: float, s: Sample) -> None:
        self.items.append((now, s))
        while self.items and self.items[0][0] < now - 1.0:
            self.items.popleft()

    def fill(self, view: LiveView) -> None:
        xs = [s for _, s in self.items]
        if not xs:
            return
        oks = [s for s in xs if s.ok]
        view.ok_ratio = len(oks) / len(xs)
        view.p99_ms = live_p99([s.lat_ms for s in xs])
        by: dict[str, int] = {}
        for s in oks:
            by[s.region or "?"] = by.get(s.region or "?", 0) + 1
        view.served = {k: v / len(oks) for k, v in sorted(by.items())} if oks else {}


def event_loop_factory() -> Callable[[], asyncio.AbstractEventLoop] | None:
    try:
        import uvloop
    except ImportError:
        return None
    return uvloop.new_event_loop


def resolve_faults(scenario: Scenario, topo: Topology) -> list[Fault]:
    """Every name checked, every default filled, the schedule checked: before anything runs."""
    topo.region(scenario.region)
    faults = [resolve(f, topo, scenario.region) for f in scenario.faults]
    if faults or scenario.rollout is None:
        check_schedule(faults, scenario.phases.fault_s)
    return faults


class _Traffic:
    """The drill's traffic: in this process, or split over worker processes."""

    def __init__(
        self, drill: Drill, pool: WorkerPool | RemoteWorkerPool | None, sink: Callable[[Sample], None], key_prefix: str
    ) -> None:
        sc = drill.scenario
        self.pool = pool
        self.sink = sink
        self.client: PaymentClient | None = None
        self.gen: OpenLoopGenerator | None = None
        if pool is None:
            self.client = PaymentClient.for_traffic(drill.platform.entrypoint(), sc.region, sc.traffic)
            self.gen = OpenLoopGenerator(
                self.client,
                Schedule.constant(sc.traffic.rate_rps, sc.phases.total_s()),
                drill.clock,
                sink,
                key_prefix=key_prefix,
                max_in_flight=sc.traffic.max_in_flight,
            )
        self.stats = GeneratorStats()

    async def run(self, origin: float) -> None:
        if self.gen is not None:
            self.stats = await self.gen.run(origin)
        elif self.pool is not None:
            self.pool.go(origin)
            self.stats = await self.pool.collect(self.sink)

    def stop(self) -> None:
        if self.gen is not None:
            self.gen.stop()
        if self.pool is not None:
            self.pool.stop()

    async def aclose(self) -> None:
        if self.gen is not None:
            self.stats = self.gen.stats
        elif self.pool is not None:
            self.stats = self.pool.stats
        if self.client is not None:
            await self.client.aclose()


class Drill:
    def __init__(
        self,
        scenario: Scenario,
        topology: Topology,
        *,
        state_dir: Path,
        runs_dir: Path,
        keep_up: bool = False,
        clock: Clock | None = None,
        progress: Progress | None = None,
        platform: Platform,
        sli: LiveSli | None = None,
        plot: bool = True,
        hold_fleet: bool = True,
        freeze_deploys: bool = False,
        sli_url: str | None = None,
    ) -> None:
        self.scenario = scenario
        # Where the rollout controllers reach this drill's live SLIs (the CLI's --sli-port); a drill
        # with a release and no such server serves its own where the platform says they reach it
        # (analysis_host: loopback on kwok, the host's kind-network address on kind).
        self.sli_url = sli_url
        # --sli-port without --sli-host on kind: served once the fleet is up (_serve_sli)
        self.sli_port: int | None = None
        self.prometheus_url: str | None = None
        self._stable: dict[str, dict[str, Any]] = {}
        self._manifests: RolloutManifests | None = None
        self._run: rollouts.ReleaseRun | None = None
        # The deploy freeze: when the page alert fires, every Argo Rollout in flight is paused
        # until the faults are reverted and payments meet the SLO again (kwok, kind).
        self.freeze_deploys = freeze_deploys
        self._frozen = False
        if (freeze_deploys or scenario.rollout is not None) and sli is None:
            sli = LiveSli(slo=scenario.slo.ratio)
        # Drawing report.html's plot is a few tenths of a second of CPU per drill (--no-plot).
        self.plot = plot
        # False when the caller already holds the fleet for longer (a game day's drills).
        self.hold_fleet = hold_fleet
        # The run's folder once it exists (partial results after an interrupt are there too).
        self.run_dir: Path | None = None
        # Live SLIs for the rollout controllers' analysis (measure/live_sli.py), fed as samples complete.
        self.sli = sli
        self.topology = topology
        self.state_dir = state_dir.resolve()
        self.runs_dir = runs_dir
        self.keep_up = keep_up
        self.clock = clock or MonotonicClock()
        self.progress = progress or _noop
        self.platform = platform
        self.ledger = FaultLedger(ledger_path(self.state_dir))
        self.view = LiveView(total_s=scenario.phases.total_s())
        self._phase_ends: dict[str, float] = {}
        self._interrupted = False
        # perf_counter marks of the run's parts, for result.json `timing`.
        self._times: dict[str, float] = {}
        self.ownership = FleetOwnership(self.state_dir)

    def _say(self, msg: str) -> None:
        self.view.message = msg
        self.progress(self.view)

    # -- the run --------------------------------------------------------------------------------
    def run(self) -> DrillOutcome:
        faults = resolve_faults(self.scenario, self.topology)
        Schedule.constant(self.scenario.traffic.rate_rps, self.scenario.phases.total_s())
        self._check_traffic_origin(faults)
        manifests = None
        if self.scenario.rollout is not None:
            # Before anything starts: the manifests, the regions, and a platform that has rollouts.
            manifests = rollouts.check_release(self.scenario.rollout, self.scenario.region, self.topology)
        if self.freeze_deploys or manifests is not None:
            rollouts.require_kubernetes(self.platform)
        # Held until the fleet is down again: nobody else injects into it or tears it down meanwhile.
        if self.hold_fleet:
            self.ownership.acquire(f"drill {self.scenario.name}")
        self._times = {}
        try:
            owned = not self.platform.is_up()
            if owned:
                began = time.perf_counter()
                self.platform.up(progress=self._say, owner_pid=os.getpid())
                self._times["up_s"] = time.perf_counter() - began
            elif self.platform.mesh() != self.topology.mesh:
                raise PlatformError(
                    f"the {self.platform.name} fleet is up with mesh {self.platform.mesh()!r} "
                    f"but the drill asks for {self.topology.mesh!r}",
                    hint="run `failover-drill down` first, or drop --mesh",
                )
            run_dir: Path | None = None
            watcher = None
            stack = contextlib.ExitStack()
            try:
                self._times["steady_from"] = time.perf_counter()
                self._say("checking the fleet is steady")
                self.platform.wait_steady(self.scenario.region)
                self._check_reachable()
                self._warn_near_capacity()
                if self.sli_port is not None:
                    self._serve_sli(stack)
                if manifests is not None:
                    self._prepare_release(manifests, stack)
                run_dir = self.run_dir = new_run_dir(self.runs_dir, self._run_id(faults))
                lease = self.scenario.phases.total_s() + 30.0
                watcher = watchdog.spawn(self.state_dir, os.getpid(), lease, self.state_dir / "logs" / "watchdog.log")
                code = self._run_phases(run_dir, faults)
            finally:
                try:
                    revert_open_faults(self.state_dir, only_owner=os.getpid(), platform=self.platform)
                    self._restore_stable()
                finally:
                    stack.close()
                    if watcher is not None:
                        watcher.terminate()
                        watcher.wait(5)
                    if owned and not self.keep_up:
                        self._say(f"stopping the {self.platform.name} fleet")
                        began = time.perf_counter()
                        self.platform.down()
                        self._times["down_s"] = time.perf_counter() - began
        finally:
            if self.hold_fleet:
                self.ownership.release()
        assert run_dir is not None
        result = self._record_timing(run_dir)
        if code == EXIT_INTERRUPTED:
            raise Interrupted(f"drill interrupted; faults reverted; partial results in {run_dir}")
        verdict = result["verdict"]
        code = (
            EXIT_PASSED if verdict["passed"] else EXIT_INCONCLUSIVE if verdict["inconclusive"] else EXIT_VERDICT_FAILED
        )
        return DrillOutcome(run_dir, result, code)

    def _check_traffic_origin(self, faults: list[Fault]) -> None:
        sc = self.scenario
        if sc.traffic.origin != "in-region":
            return
        self.platform.check_in_region_traffic()
        for f in faults:
            if f.takes_down(sc.region):
                raise ConfigError(
                    f"in-region traffic runs in {sc.region}: a region-loss of {sc.region} would take the users "
                    "down with it and measure nothing",
                    field="traffic.origin",
                    hint="send from the host (traffic.origin: host) to drill the loss of the users' own region",
                )

    def _serve_sli(self, stack: contextlib.ExitStack) -> None:
        """The live SLI endpoint, if not served already: where the fleet's controllers reach it
        (on kind the host's address on the kind network, known once the fleet is up), on the port
        asked for (--sli-port without --sli-host), else any."""
        if self.sli is None or self.sli_url is not None:
            return
        host = self.platform.analysis_host()
        port = self.sli_port or 0
        server = stack.enter_context(bound_server(self.sli, host, port))
        self.sli_url = server.url
        self._say(f"live SLIs: {server.url}/metrics and {server.url}/analysis")

    def _prepare_release(self, manifests: RolloutManifests, stack: contextlib.ExitStack) -> None:
        assert self.sli is not None
        self._serve_sli(stack)
        self._manifests = manifests
        rel = self.scenario.rollout
        assert rel is not None
        if rel.analysis == "prometheus":
            self.prometheus_url = self._start_prometheus(stack)
        assert self.sli_url is not None
        self._stable = rollouts.prepare_release(
            self.platform, manifests, self.sli_url, self._say, rel.where(self.scenario.region)
        )

    def _start_prometheus(self, stack: contextlib.ExitStack) -> str:
        """A Prometheus of the drill's own scraping its /metrics, for as long as the drill runs."""
        assert self.sli_url is not None
        self._say("starting Prometheus to scrape the drill's /metrics for the canary analysis")
        prom = stack.enter_context(scraping(self.sli_url, self.state_dir / f"prometheus-{os.getpid()}"))
        self._say(f"Prometheus at {prom.url} (the analysis' prometheus-url)")
        return prom.url

    def _restore_stable(self) -> None:
        pid = os.getpid()
        try:
            for line in rollouts.restore_stable(self.platform, self.state_dir, pid):
                self._say(line)
        except DrillError as exc:
            log.error("the release stays; `failover-drill recover` restores the stable version", error=str(exc))

    async def _release(self, jr: journal_mod.JournalWriter, origin: float, at: float) -> None:
        """Start the scenario's release at its time, then follow it until every region's is
        aborted or fully out (or the phases end)."""
        rel = self.scenario.rollout
        assert rel is not None and self.sli_url is not None and self._manifests is not None
        await self._until(at)
        run = rollouts.ReleaseRun(
            self.platform,
            self._manifests,
            rel,
            sli_url=self.sli_url,
            state_dir=self.state_dir,
            owner_pid=os.getpid(),
            journal=jr,
            now=lambda: self.clock.now() - origin,
            say=self._say,
            regions=rel.where(self.scenario.region),
            stable=self._stable,
            prometheus_url=self.prometheus_url,
        )
        self._run = run
        await asyncio.to_thread(run.start)
        while not run.done():
            await asyncio.sleep(1.0)
            await asyncio.to_thread(run.poll)

    async def _end_release(self, task: asyncio.Task[None] | None) -> None:
        if task is None:
            return
        if not task.done():
            task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        if self._run is not None:
            self._run.end()

    async def _freeze_on_page(self, jr: journal_mod.JournalWriter, origin: float) -> None:
        assert self.sli is not None
        # Polled: the alert is a condition over sliding windows, not an event anything signals.
        while not self.sli.page_alert():  # noqa: ASYNC110
            await asyncio.sleep(0.5)
        at = round(self.clock.now() - origin, 3)
        try:
            paused = await asyncio.to_thread(rollouts.freeze, self.platform, self.state_dir, None, os.getpid())
        except DrillError as exc:
            jr.write(
                records.PlatformEventRecord(
                    at, "failover-drill", "deploy-freeze-failed", None, None, str(exc)
                ).to_json()
            )
            self._say(f"page alert: the deploy freeze failed: {exc}")
            return
        self._frozen = True
        detail = "; ".join(rollouts.freeze_lines(paused)) or "no rollout in flight"
        jr.write(
            records.PlatformEventRecord(
                at, "failover-drill", "deploy-freeze", None, None, f"page alert: {detail}"
            ).to_json()
        )
        self._say(f"page alert fired: deploy freeze ({detail})")
        # Held while the service is down, not for the rest of the drill: once the faults are
        # reverted and payments succeed within the SLO again, what was paused goes on, so a release
        # caught by the freeze can still finish inside the recovery phase.
        while not self._recovered():  # noqa: ASYNC110
            await asyncio.sleep(0.5)
        try:
            await self._thaw_now(jr, origin)
        except DrillError as exc:
            self._say(f"could not lift the deploy freeze yet ({exc}); tried again when the drill ends")

    def _recovered(self) -> bool:
        assert self.sli is not None
        if self.view.phase != "recovery":
            return False
        s = self.sli.sli(ALL, ALL, RECOVERED_WINDOW_S)
        return s.success_ratio is not None and s.success_ratio >= self.scenario.slo.ratio

    async def _thaw(self, jr: journal_mod.JournalWriter, origin: float, freezer: asyncio.Task[None] | None) -> None:
        """Lift this drill's own freeze (a person's freeze stays); `recover` lifts it if the drill dies."""
        if freezer is not None and not freezer.done():
            freezer.cancel()
            await asyncio.gather(freezer, return_exceptions=True)
        await self._thaw_now(jr, origin)

    async def _thaw_now(self, jr: journal_mod.JournalWriter, origin: float) -> None:
        if not self._frozen:
            return
        pid = os.getpid()
        lines = await asyncio.to_thread(rollouts.thaw, self.platform, self.state_dir, lambda rec: rec.owner_pid == pid)
        self._frozen = False
        detail = "; ".join(lines) or "nothing to resume"
        at = round(self.clock.now() - origin, 3)
        jr.write(records.PlatformEventRecord(at, "failover-drill", "deploy-thaw", None, None, detail).to_json())
        self._say(f"deploy freeze lifted ({detail})")

    def _warn_near_capacity(self) -> None:
        per_worker = self.scenario.traffic.rate_rps / self.scenario.traffic.workers
        warning = self.platform.capacity_warning(per_worker)
        if warning:
            self._say(warning)

    def _predictions(self, faults: list[Fault]) -> list[dict[str, Any]] | None:
        """What the manifests predict for each fault (predict/), recorded before anything runs so
        the report can judge it; a prediction that cannot be made never stops a drill."""
        try:
            ctx = predictions.context(self.scenario, self.topology, self.platform.name)
            found = predictions.for_faults(faults, ctx)
        except (DrillError, KeyError, ValueError) as exc:
            log.warning("no prediction for this drill", error=str(exc))
            return None
        for p, fault in zip(found, faults, strict=True):
            warning = predictions.unseen_failover(p, fault, self.scenario.phases.fault_s)
            if warning:
                self._say(warning)
        return [p.to_json() for p in found]

    def _run_id(self, faults: list[Fault]) -> str:
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
        kind = faults[0].kind if len(faults) == 1 else "compound"
        return f"{stamp}-{kind}-{self.scenario.region}-{secrets.token_hex(2)}"

    def _check_reachable(self) -> None:
        url = self.platform.entrypoint() + "/healthz"
        req = urllib.request.Request(url, headers={"x-client-region": self.scenario.region})
        try:
            with urllib.request.urlopen(req, timeout=3) as resp:
                resp.read()
        except (urllib.error.URLError, OSError) as exc:
            raise PlatformError(
                f"the front door {url} is not reachable before the drill: {exc}",
                hint="check `failover-drill status`; `failover-drill down` then retry",
            ) from None

    def _run_phases(self, run_dir: Path, faults: list[Fault]) -> int:
        sc = self.scenario
        ph = sc.phases
        w, b, f, r = ph.warmup_s, ph.baseline_s, ph.fault_s, ph.recovery_s
        planned = [
            {"name": "warmup", "start": 0.0, "end": w},
            {"name": "baseline", "start": w, "end": w + b},
            {"name": "fault", "start": w + b, "end": w + b + f},
            {"name": "recovery", "start": w + b + f, "end": w + b + f + r},
        ]
        jr = journal_mod.JournalWriter(run_dir / "journal.jsonl")
        # Before any worker starts and before the origin: a full collection can take 100 ms, and
        # remote workers start at the instant wait_ready returns, which the origin must follow at once.
        gc_quiet.settle()
        pool: WorkerPool | RemoteWorkerPool | None = None
        predicted = self._predictions(faults)
        if sc.traffic.origin == "in-region":
            remote = RemoteWorkerPool(
                self.platform.traffic_workers(
                    region=sc.region,
                    spec_json=sc.traffic.model_dump_json(),
                    duration_s=sc.phases.total_s(),
                    workers=sc.traffic.workers,
                    key_prefix=run_dir.name,
                )
            )
            self._say(f"starting {sc.traffic.workers} traffic worker(s) in {sc.region}")
            try:
                remote.wait_ready()
            except BaseException:
                remote.close()
                raise
            pool = remote
        elif sc.traffic.workers > 1:
            # Workers start before the clock's origin so none of them begins late.
            self._say(f"starting {sc.traffic.workers} traffic workers")
            pool = WorkerPool(
                sc.traffic.workers,
                self.platform.entrypoint(),
                sc.region,
                sc.traffic,
                sc.phases.total_s(),
                run_dir.name,
                event_loop_factory(),
            )
            pool.wait_ready()
        anchor = Anchor(self.clock)
        self._times["measured_from"] = time.perf_counter()
        jr.write_now(
            meta_record(run_dir.name, sc, self.platform.name, self.topology, anchor, planned, faults, predicted)
        )
        code = 0
        try:
            with asyncio.Runner(loop_factory=event_loop_factory()) as runner:
                code = runner.run(self._async_phases(jr, anchor, faults, planned, pool))
        finally:
            if pool is not None:
                pool.stop()
                pool.close()
            self._finish(jr, anchor, run_dir)
        return code

    async def _async_phases(
        self,
        jr: journal_mod.JournalWriter,
        anchor: Anchor,
        faults: list[Fault],
        planned: list[dict[str, Any]],
        pool: WorkerPool | RemoteWorkerPool | None = None,
    ) -> int:
        sc = self.scenario
        loop = asyncio.get_running_loop()
        main = asyncio.current_task()
        assert main is not None

        def on_signal(signame: str) -> None:
            if not self._interrupted:
                self._interrupted = True
                log.warning("interrupted: reverting faults", signal=signame)
                main.cancel()

        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, on_signal, sig.name)
        origin = anchor.mono
        recent = _Recent()
        counted_from = planned[1]["start"]
        self._phase_ends = {p["name"]: p["end"] for p in planned}
        budget_requests = (1 - sc.slo.target_pct / 100) * sc.traffic.rate_rps * sc.slo.period_days * 86_400

        def sink(s: Sample) -> None:
            jr.write(s.to_json())
            recent.add(s.sched + s.lat_ms / 1000, s)
            self.view.sent += 1
            if not s.ok and s.err != DROPPED and s.sched >= counted_from and budget_requests > 0:
                self.view.budget_pct += 100.0 / budget_requests
            if self.sli is not None:
                self.sli.add(s)

        traffic = _Traffic(self, pool, sink, jr.path.parent.name)
        runner = FaultRunner(
            self.platform,
            self.ledger,
            self.clock,
            lambda: origin,
            jr,
            lease_s=sc.phases.total_s() + 30.0,
            owner_pid=os.getpid(),
        )
        gen_task = asyncio.create_task(traffic.run(origin))

        async def ticker() -> None:
            cpu_before = cpu_load.read()
            n = 0
            while True:
                await asyncio.sleep(0.2)
                n += 1
                if n % 5 == 0 and cpu_before is not None:
                    # What else used the CPU meanwhile: it explains a stopwatch that fell behind.
                    cpu_now = cpu_load.read()
                    used = cpu_load.share(cpu_before, cpu_now) if cpu_now is not None else None
                    if used is not None:
                        at = round(self.clock.now() - origin, 3)
                        rec = records.CpuRecord(at, used.busy_pct, used.steal_pct, used.own_pct, used.span_s)
                        jr.write(rec.to_json())
                    cpu_before = cpu_now
                jr.flush()
                self.view.elapsed_s = self.clock.now() - origin
                recent.fill(self.view)
                self.progress(self.view)

        tick = asyncio.create_task(ticker())
        freezer = asyncio.create_task(self._freeze_on_page(jr, origin)) if self.freeze_deploys else None
        rel = sc.rollout
        releaser = (
            asyncio.create_task(self._release(jr, origin, origin + planned[2]["start"] + rel.at_s))
            if rel is not None
            else None
        )
        active: dict[int, str] = {}
        try:
            self._phase("warmup", [])
            await self._until(origin + planned[1]["start"])
            self._phase("baseline", [])
            jr.write_now(records.PhaseEvent("baseline", self.clock.now() - origin).to_json())
            fault_start = origin + planned[2]["start"]
            fault_end = origin + planned[2]["end"]
            timeline = sorted(
                [(fault_start + fs.at_s, "inject", i) for i, fs in enumerate(faults)]
                + [
                    (fault_start + fs.at_s + fs.duration_s if fs.duration_s else fault_end, "revert", i)
                    for i, fs in enumerate(faults)
                ],
                key=lambda x: (x[0], x[1] == "inject"),
            )
            for at, action, i in timeline:
                await self._until(at)
                if action == "inject":
                    active[i] = await self._inject(runner, faults[i])
                    self._phase("fault", [faults[j].label() for j in active])
                else:
                    await self._revert(runner, faults[i], active.pop(i))
                    self._phase("fault", [faults[j].label() for j in active])
            self._phase("recovery", [])
            await self._until(origin + planned[3]["end"])
            await self._thaw(jr, origin, freezer)
            await self._end_release(releaser)
            traffic.stop()
            await asyncio.wait_for(gen_task, timeout=sc.traffic.timeout_s * sc.traffic.retry.attempts + 5)
            jr.write_now(records.EndEvent(self.clock.now() - origin).to_json())
            return 0
        except asyncio.CancelledError:
            return EXIT_INTERRUPTED
        finally:
            for i, entry in list(active.items()):
                try:
                    await self._revert(runner, faults[i], entry)
                except DrillError as exc:
                    log.error("revert failed; the watchdog and `failover-drill recover` will retry", error=str(exc))
            try:
                await self._thaw(jr, origin, freezer)
            except DrillError as exc:
                log.error("the deploy freeze stays; `failover-drill recover` lifts it", error=str(exc))
            await self._end_release(releaser)
            traffic.stop()
            if not gen_task.done():
                gen_task.cancel()
            await asyncio.gather(gen_task, return_exceptions=True)
            tick.cancel()
            await traffic.aclose()
            jr.write(records.GenRecord(sc.traffic.workers, traffic.stats).to_json())
            jr.flush(sync=True)
            for sig in (signal.SIGINT, signal.SIGTERM):
                loop.remove_signal_handler(sig)

    def _phase(self, phase: str, faults: list[str]) -> None:
        changed = phase != self.view.phase
        self.view.phase = phase
        self.view.phase_end_s = self._phase_ends.get(phase, self.view.total_s)
        if self.sli is not None:
            self.sli.set_failover(phase, faults)
        if changed:
            # At once, not at the next 0.2 s tick: the live line named the old phase after an inject.
            self.progress(self.view)

    async def _until(self, when: float) -> None:
        delay = when - self.clock.now()
        if delay > 0:
            await asyncio.sleep(delay)

    async def _inject(self, runner: FaultRunner, fault: Fault) -> str:
        done = await asyncio.to_thread(runner.inject, fault)
        self._say(f"injected {fault.label()}")
        return done.entry

    async def _revert(self, runner: FaultRunner, fault: Fault, entry_id: str) -> None:
        if await asyncio.to_thread(runner.revert, fault, entry_id):
            self._say(f"reverted {fault.label()}")

    def _finish(self, jr: journal_mod.JournalWriter, anchor: Anchor, run_dir: Path) -> None:
        self._times["reports_from"] = time.perf_counter()
        finish_journal(self.platform, jr, anchor, run_dir, plot=self.plot)
        self._times["reports_to"] = time.perf_counter()

    def _record_timing(self, run_dir: Path) -> dict[str, Any]:
        """Where the drill's time went (result.json `timing`): appended to the journal, which
        `failover-drill report` rebuilds from, and set in the result.json already written."""
        result: dict[str, Any] = json.loads((run_dir / "result.json").read_text())
        t = self._times
        if not {"steady_from", "measured_from", "reports_from", "reports_to"} <= t.keys():
            return result  # the phases never ran to their reports: nothing to account for
        rec = records.TimingRecord(
            up_s=_ms(t.get("up_s")),
            steady_check_s=round(t["measured_from"] - t["steady_from"], 3),
            measured_s=round(t["reports_from"] - t["measured_from"], 3),
            reports_s=round(t["reports_to"] - t["reports_from"], 3),
            down_s=_ms(t.get("down_s")),
        )
        jr = journal_mod.JournalWriter(run_dir / "journal.jsonl")
        jr.write(rec.to_json())
        jr.close()
        timing = timing_out(rec)
        result["timing"] = None if timing is None else timing.model_dump(mode="json")
        (run_dir / "result.json").write_text(json.dumps(result, indent=2))
        History(run_dir.parent / "history.sqlite").record(result)
        return result


def _ms(seconds: float | None) -> float | None:
    return None if seconds is None else round(seconds, 3)


def meta_record(
    run_id: str,
    scenario: Scenario,
    platform: str,
    topology: Topology,
    anchor: Anchor,
    phases: list[dict[str, Any]],
    faults: list[Fault] | None = None,
    predictions: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """The journal's first record: what ran, where, and the wall time of the drill's origin."""
    return records.MetaRecord(
        run_id=run_id,
        scenario=scenario.model_dump(mode="json"),
        platform=platform,
        mesh=topology.mesh,
        phases=[records.PlannedPhase.from_json(p) for p in phases],
        started_at=datetime.now(UTC).isoformat(),
        origin_wall=anchor.wall,
        regions=topology.region_names,
        zones=topology.all_zones(),
        faults_resolved=[dump_fault(f) for f in faults] if faults is not None else None,
        predictions=predictions,
    ).to_json()


def live_p99(latencies_ms: list[float]) -> float:
    """The live view's p99 of the last seconds, by the timeline's nearest-rank pct(): exact over a
    few hundred values, where an HDR histogram per view would cost more than the sort
    (measurement itself uses the HDR histograms)."""
    return pct(latencies_ms, 99)


def finish_journal(
    platform: Platform, jr: journal_mod.JournalWriter, anchor: Anchor, run_dir: Path, *, plot: bool = True
) -> dict[str, Any]:
    """What the platform saw and the payment reconciliation go into the journal, then the reports
    are built from it; shared by drills and step-by-step sessions."""
    try:
        for ev in platform.events(anchor.wall - 5):
            at = round(anchor.to_mono(ev.wall) - anchor.mono, 4)
            jr.write(records.PlatformEventRecord(at, ev.source, ev.kind, ev.region, ev.zone, ev.detail).to_json())
    except (DrillError, OSError) as exc:
        log.warning("could not read platform events", error=str(exc))
    jr.flush(sync=True)
    try:
        charges = [(c.key, c.region) for c in platform.ledger()]
        rec = reconcile(payment_outcomes(journal_mod.read(jr.path)), charges, workdir=run_dir)
        jr.write(records.PaymentsRecord(rec).to_json())
    except (DrillError, OSError) as exc:
        log.warning("could not reconcile payments", error=str(exc))
    jr.close()
    return finish_run(run_dir, plot=plot)
