"""A drill driven step by step from outside (Chaos Toolkit, game days): traffic runs in a
background thread for as long as the session lives; faults are injected and reverted on request,
through the same ledger, journal and reports as `failover-drill drill`."""

from __future__ import annotations

import asyncio
import collections
import contextlib
import os
import sys
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from failover_drill import obs, rollouts, watchdog
from failover_drill.clock import Anchor, Clock, MonotonicClock
from failover_drill.config.scenario import Release, Scenario
from failover_drill.config.topology import Topology
from failover_drill.drill import finish_journal, live_p99, meta_record
from failover_drill.errors import ConfigError, PlatformError
from failover_drill.fault_runner import FaultRunner
from failover_drill.faults.catalogue import resolve
from failover_drill.faults.ledger import FaultLedger, ledger_path
from failover_drill.faults.model import Fault
from failover_drill.measure.live_sli import LiveSli, SliServer, bound_server
from failover_drill.measure.payments import Reconciliation, reconcile
from failover_drill.measure.prometheus import scraping
from failover_drill.ownership import FleetOwnership
from failover_drill.platforms.base import Platform
from failover_drill.recovery import revert_open_faults
from failover_drill.report import journal as journal_mod
from failover_drill.report import records
from failover_drill.report.result import build_result
from failover_drill.report.rundir import new_run_dir
from failover_drill.traffic import gc_quiet
from failover_drill.traffic.client import PaymentClient
from failover_drill.traffic.generator import OpenLoopGenerator
from failover_drill.traffic.samples import Sample, payment_outcomes
from failover_drill.traffic.schedule import Schedule

log = obs.get(__name__)
MAX_SESSION_S = 3600.0
WARMUP_S = 2.0
RECENT_S = 60.0


# How often a thread holding the GIL hands it over while the session's traffic runs beside it.
QUICK_SWITCH_S = 0.0005


@contextlib.contextmanager
def _beside_traffic() -> Iterator[None]:
    """A probe that reads the whole journal runs in the caller's thread beside the traffic thread's
    event loop, and stopped it for up to 170 ms (a probe made the session inconclusive): with the
    default 5 ms switch interval the loop waits up to 5 ms for the GIL after every socket call,
    and the objects the probe builds set off collections that hold the GIL throughout. The GIL is
    handed over every 0.5 ms and the collector waits until the probe is done."""
    before = sys.getswitchinterval()
    sys.setswitchinterval(min(before, QUICK_SWITCH_S))
    try:
        with gc_quiet.paused():
            yield
    finally:
        sys.setswitchinterval(before)


class Session:
    def __init__(
        self,
        scenario: Scenario,
        topology: Topology,
        *,
        state_dir: Path,
        runs_dir: Path,
        keep_up: bool = False,
        platform: Platform,
        clock: Clock | None = None,
    ) -> None:
        self.scenario = scenario
        self.topology = topology
        self.state_dir = state_dir.resolve()
        self.runs_dir = runs_dir
        self.keep_up = keep_up
        self.clock = clock or MonotonicClock()
        self.platform = platform
        self.ledger = FaultLedger(ledger_path(self.state_dir))
        self.owned = False
        self.run_dir: Path | None = None
        self.jr: journal_mod.JournalWriter | None = None
        self.anchor: Anchor | None = None
        self.recent: collections.deque[Sample] = collections.deque()
        self.active: dict[str, Fault] = {}
        self.injected: list[str] = []  # labels of every fault injected this session, in order
        self.runner: FaultRunner | None = None
        self.ownership = FleetOwnership(self.state_dir)
        self.ownership_held = False
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._gen: OpenLoopGenerator | None = None
        self._watchdog: Any = None
        self._lock = threading.Lock()
        # Live SLIs for the rollout controllers' analysis, and the release under way (if any).
        self.sli = LiveSli(slo=scenario.slo.ratio)
        self.release_run: rollouts.ReleaseRun | None = None
        self._sli_server: SliServer | None = None
        self._prometheus = contextlib.ExitStack()  # the release's Prometheus (rollout.analysis)
        self._release_stop = threading.Event()
        self._release_thread: threading.Thread | None = None

    # -- lifecycle ------------------------------------------------------------------------------
    def up(self) -> None:
        if not self.ownership_held:
            self.ownership.acquire(f"chaos toolkit session {self.scenario.name}")
            self.ownership_held = True
        if not self.platform.is_up():
            self.platform.up(owner_pid=os.getpid())
            self.owned = True

    def start(self) -> Path:
        """Fleet up if needed, steady, then traffic from now on; returns the run directory."""
        if self._thread is not None:
            return self.run_dir  # type: ignore[return-value]
        self.up()
        self.topology.region(self.scenario.region)
        self.platform.wait_steady(self.scenario.region)
        sc = self.scenario
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
        self.run_dir = new_run_dir(self.runs_dir, f"{stamp}-session-{sc.region}-{os.urandom(2).hex()}")
        self.jr = journal_mod.JournalWriter(self.run_dir / "journal.jsonl")
        self.anchor = Anchor(self.clock)
        # Phases after the warm-up are set by what happens: inject, revert, stop.
        phases = [
            {"name": "warmup", "start": 0.0, "end": WARMUP_S},
            {"name": "baseline", "start": WARMUP_S, "end": MAX_SESSION_S},
            {"name": "fault", "start": MAX_SESSION_S, "end": MAX_SESSION_S},
            {"name": "recovery", "start": MAX_SESSION_S, "end": MAX_SESSION_S},
        ]
        self.jr.write_now(meta_record(self.run_dir.name, sc, self.platform.name, self.topology, self.anchor, phases))
        anchor = self.anchor
        self.runner = FaultRunner(
            self.platform,
            self.ledger,
            self.clock,
            lambda: anchor.mono,
            self.jr,
            lease_s=MAX_SESSION_S + 30,
            owner_pid=os.getpid(),
        )
        self._watchdog = watchdog.spawn(
            self.state_dir, os.getpid(), MAX_SESSION_S + 30, self.state_dir / "logs" / "watchdog.log"
        )
        ready = threading.Event()
        self._thread = threading.Thread(target=self._traffic, args=(ready,), name="failover-drill-traffic", daemon=True)
        self._thread.start()
        ready.wait(10)
        return self.run_dir

    def _sink(self, s: Sample) -> None:
        assert self.jr is not None
        self.jr.write(s.to_json())
        self.sli.add(s)
        with self._lock:
            self.recent.append(s)
            cutoff = s.sched - RECENT_S
            while self.recent and self.recent[0].sched < cutoff:
                self.recent.popleft()

    def _traffic(self, ready: threading.Event) -> None:
        sc = self.scenario
        assert self.anchor is not None and self.jr is not None

        async def main() -> None:
            # As a drill's senders do: setup's objects frozen, collections rarer (gc_quiet).
            gc_quiet.settle()
            client = PaymentClient.for_traffic(self.platform.entrypoint(), sc.region, sc.traffic)
            self._gen = OpenLoopGenerator(
                client,
                Schedule.constant(sc.traffic.rate_rps, MAX_SESSION_S),
                self.clock,
                self._sink,
                key_prefix=self.run_dir.name if self.run_dir else "s",
                max_in_flight=sc.traffic.max_in_flight,
            )
            self._loop = asyncio.get_running_loop()
            ready.set()

            async def flusher() -> None:
                while True:
                    await asyncio.sleep(0.2)
                    if self.jr is not None:
                        self.jr.flush()

            f = asyncio.create_task(flusher())
            try:
                stats = await self._gen.run(self.anchor.mono if self.anchor else self.clock.now())
                if self.jr is not None:
                    self.jr.write(records.GenRecord(1, stats).to_json())
            finally:
                f.cancel()
                await client.aclose()

        asyncio.run(main())

    def now(self) -> float:
        assert self.anchor is not None
        return self.clock.now() - self.anchor.mono

    # -- faults ---------------------------------------------------------------------------------
    def inject(self, fault: Fault) -> dict[str, Any]:
        if self.runner is None:
            self.start()
        assert self.runner is not None
        spec = resolve(fault, self.topology, self.scenario.region)
        done = self.runner.inject(spec)
        self.active[done.entry] = spec
        self.injected.append(spec.label())
        return {"entry": done.entry, "fault": spec.label(), "injected_at_s": round(done.at_s, 4)}

    def revert(self, kind: str | None = None) -> list[str]:
        done = []
        for entry_id, spec in list(self.active.items()):
            if kind and spec.kind != kind:
                continue
            if self.runner is not None:
                self.runner.revert(spec, entry_id)
            del self.active[entry_id]
            done.append(spec.label())
        return done

    # -- a release (Argo Rollouts: kwok, kind) -----------------------------------------------------
    def release(self, rel: Release) -> str:
        """Roll out a new payment-gateway version through every region's Argo Rollouts controller,
        judged by this session's live SLIs, and follow it in the background (the journal gets each
        step); the stable version is put back when the session stops. One release per session."""
        if self.release_run is not None:
            raise ConfigError(
                "this session has released already", hint="one release per experiment: end it, start another"
            )
        manifests = rollouts.check_release(rel, self.scenario.region, self.topology)
        for kube in self.platform.region_kubes().values():  # the sandbox refuses: before traffic starts
            kube.close()
        if self.runner is None:
            self.start()
        assert self.jr is not None
        # Where the fleet's controllers reach it: on kind the host's address on the kind network.
        self._sli_server = bound_server(self.sli, self.platform.analysis_host(), 0).start()
        prometheus_url = None
        if rel.analysis == "prometheus":
            home = self.state_dir / f"prometheus-{os.getpid()}"
            try:
                prometheus_url = self._prometheus.enter_context(scraping(self._sli_server.url, home)).url
            except BaseException:
                self._sli_server.stop()
                self._sli_server = None
                raise
        run = rollouts.ReleaseRun(
            self.platform,
            manifests,
            rel,
            sli_url=self._sli_server.url,
            state_dir=self.state_dir,
            owner_pid=os.getpid(),
            journal=self.jr,
            now=self.now,
            say=lambda msg: log.info("release", detail=msg),
            regions=rel.where(self.scenario.region),
            prometheus_url=prometheus_url,
        )
        self.release_run = run
        run.start()

        def follow() -> None:
            while not run.done() and not self._release_stop.wait(1.0):
                run.poll()

        self._release_thread = threading.Thread(target=follow, name="failover-drill-release", daemon=True)
        self._release_thread.start()
        return rel.label()

    def release_outcome(self) -> str:
        """aborted / healthy when every region's release is that, else each region's state."""
        run = self.release_run
        if run is None or run.watch is None:
            return "no release"
        finals = [run.watch.final.get(r, "in flight") for r in run.watch.last]
        if finals and len(set(finals)) == 1:
            return finals[0]
        return ", ".join(f"{r} {run.watch.final.get(r, 'in flight')}" for r in run.watch.last) or "no release"

    def _end_release(self) -> None:
        run = self.release_run
        if run is None:
            return
        self._release_stop.set()
        if self._release_thread is not None:
            self._release_thread.join(15)
            self._release_thread = None
        try:
            run.end()
            for line in run.restore():
                log.info("release rolled back", detail=line)
        finally:
            self.release_run = None
            self._prometheus.close()
            if self._sli_server is not None:
                self._sli_server.stop()
                self._sli_server = None

    # -- observations ---------------------------------------------------------------------------
    def window(self, seconds: float) -> dict[str, Any]:
        """Success ratio and p99 of the requests scheduled in the last `seconds` that have all
        completed (so the newest, still in flight, cannot flatter the answer)."""
        t = self.scenario.traffic
        end = self.now() - t.timeout_s * t.retry.attempts - t.retry.backoff_max_ms / 1000 * (t.retry.attempts - 1)
        with self._lock:
            xs = [s for s in self.recent if end - seconds <= s.sched < end]
        if not xs:
            return {"requests": 0, "success_ratio": None, "p99_ms": None}
        return {
            "requests": len(xs),
            "success_ratio": sum(s.ok for s in xs) / len(xs),
            # Of successful requests, as in result.json: failures are the success ratio's business.
            "p99_ms": live_p99(ok) if (ok := [s.lat_ms for s in xs if s.ok]) else None,
        }

    def payments_now(self) -> Reconciliation:
        """Payments reconciled while traffic still runs. The journal is read before the ledgers:
        a replica charges a payment before it acknowledges it, so every acknowledgement the
        journal holds is in ledgers read afterwards. Read the other way round, acknowledgements
        written in between would look like lost payments (one run reported 10)."""
        if self.jr is None or self.run_dir is None:
            raise PlatformError("no drill session is running", hint="start one with the start_traffic action")
        self.jr.flush()
        with _beside_traffic():
            outcomes = list(payment_outcomes(journal_mod.read(self.jr.path)))
            charges = [(c.key, c.region) for c in self.platform.ledger()]
            return reconcile(outcomes, charges, workdir=self.run_dir)

    def verdict_now(self) -> str:
        """The drill's verdict on what has happened so far, as one line that starts with its word:
        `passed`, `failed: <reasons>` or `inconclusive: <why>`. Before any fault there is nothing to
        judge. After a revert it first waits until the recovery can have settled (the stability
        window plus the longest a request can take), so a verdict asked right away is not a fail."""
        if not self.injected and self.release_run is None:
            return "passed: no fault injected yet"
        r = self.result()
        reverted = r["fault"]["reverted_at_s"]
        if reverted is not None and not self.active:
            t = self.scenario.traffic
            settled = reverted + self.scenario.slo.stability_s + t.timeout_s * t.retry.attempts + 0.5
            if self.now() < settled:
                time.sleep(settled - self.now())
                r = self.result()
        v = r["verdict"]
        if v["inconclusive"]:
            return str(v["reasons"][0])  # it reads "inconclusive: the load generator fell behind ..."
        failed = [c for c in v["checks"] if not c["passed"]]
        if failed:
            # Reasons name the checks in the order they were judged; the run's other notes (it is
            # still running, payments reconciled at its end) are not part of this verdict.
            return "failed: " + "; ".join(v["reasons"][: len(failed)])
        return "passed"

    def result(self) -> dict[str, Any]:
        if self.jr is None or self.run_dir is None:
            raise PlatformError("no drill session is running", hint="start one with the start_traffic action")
        self.jr.flush()
        with _beside_traffic():
            return build_result(self.run_dir / "journal.jsonl")

    def stop(self) -> dict[str, Any] | None:
        """Stop traffic, revert every fault and the release, reconcile, write reports; idempotent."""
        try:
            self.revert()
        finally:
            try:
                revert_open_faults(self.state_dir, only_owner=os.getpid(), platform=self.platform)
            finally:
                self._end_release()
        result = None
        if self._gen is not None and self._loop is not None:
            self._loop.call_soon_threadsafe(self._gen.stop)
        if self._thread is not None:
            self._thread.join(self.scenario.traffic.timeout_s * self.scenario.traffic.retry.attempts + 10)
            self._thread = None
        if self.jr is not None and self.run_dir is not None and self.anchor is not None:
            self.jr.write_now(records.EndEvent(self.now()).to_json())
            result = finish_journal(self.platform, self.jr, self.anchor, self.run_dir)
            self.jr = None
            self.runner = None
        if self._watchdog is not None:
            self._watchdog.terminate()
            self._watchdog.wait(5)
            self._watchdog = None
        if self.owned and not self.keep_up:
            self.platform.down()
            self.owned = False
        if self.ownership_held:
            self.ownership.release()
            self.ownership_held = False
        return result
