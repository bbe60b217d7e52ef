"""Traffic workers the drill does not run itself (remote_worker.py in a Kubernetes Job's pods, so
traffic originates where the users are), seen as the drill sees its local worker processes:
ready, go at an origin, samples merged as they arrive, stopped, cleaned up.

The platform says how to create the workers and read their output (remote_workers.RemoteWorkers); this pool
follows each worker's output stream in a thread, starts every worker at one wall-clock time a
moment ahead, and puts their samples on the drill's axis.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import queue
import threading
import time
from collections.abc import Callable
from typing import Any

from failover_drill.errors import DrillError
from failover_drill.remote_workers import RemoteWorkers, WorkerOutput
from failover_drill.traffic.generator import GeneratorStats
from failover_drill.traffic.samples import Sample

# The start time is sent to every worker this far ahead (plus a second per worker), so all of
# them have it before it comes.
START_LEAD_S = 1.0


class RemoteWorkerPool:
    def __init__(self, workers: RemoteWorkers, start_lead_s: float = START_LEAD_S) -> None:
        self.workers = workers
        self.start_lead_s = start_lead_s
        self.stats = GeneratorStats()
        self.ids: list[str] = []
        self.start_wall = 0.0
        self.shift_s = 0.0
        self.lost: list[str] = []  # workers whose output ended without their final record
        self._followers: list[WorkerOutput] = []
        self._threads: list[threading.Thread] = []
        self._inbox: queue.Queue[tuple[int, dict[str, Any] | None]] = queue.Queue()
        self._ready: set[int] = set()
        self._finished: set[int] = set()
        self._other: dict[int, list[str]] = {}  # per worker: its last lines that were not records

    # -- start -----------------------------------------------------------------------------------
    def wait_ready(self, timeout_s: float = 180.0) -> None:
        """Launch, follow every worker, start them all at one instant; returns at that instant."""
        deadline = time.monotonic() + timeout_s
        self.workers.launch()
        self.ids = self.workers.running(max(1.0, deadline - time.monotonic()))
        for k, worker in enumerate(self.ids):
            out = self.workers.follow(worker)
            self._followers.append(out)
            t = threading.Thread(target=self._read, args=(k, out), daemon=True, name=f"remote-worker-{k}")
            t.start()
            self._threads.append(t)
        pending: list[tuple[int, dict[str, Any] | None]] = []
        while len(self._ready) < len(self.ids):
            left = deadline - time.monotonic()
            if left <= 0:
                raise DrillError(
                    f"traffic workers not ready after {timeout_s:g} s: "
                    f"{len(self._ready)} of {len(self.ids)} ({self.workers.describe()})",
                    hint="check the workers' pods (kubectl describe / logs); the drill has removed them",
                )
            try:
                item = self._inbox.get(timeout=min(left, 0.5))
            except queue.Empty:
                continue
            k, rec = item
            if rec is None:
                raise DrillError(
                    f"traffic worker {self.ids[k]} ended before it was ready: {self._tail(k)}",
                    hint=f"see {self.workers.describe()}",
                )
            if rec.get("t") == "ready":
                self._ready.add(k)
            else:
                pending.append(item)
        for item in pending:
            self._inbox.put(item)
        # Each start is a round trip to the worker (kubectl exec: up to a second): allow for them all.
        self.start_wall = time.time() + self.start_lead_s + len(self.ids)
        for worker in self.ids:
            self.workers.start(worker, self.start_wall)
        # Return at the start instant, so the drill's origin (taken next) is the workers' origin.
        time.sleep(max(0.0, self.start_wall - time.time()))

    def go(self, origin: float) -> None:
        """origin: the drill's monotonic origin. Samples are shifted by however far it is from
        the instant the workers started at (a few milliseconds: the drill anchors right after)."""
        origin_wall = time.time() - (time.monotonic() - origin)
        self.shift_s = self.start_wall - origin_wall

    # -- samples ---------------------------------------------------------------------------------
    def _read(self, k: int, out: WorkerOutput) -> None:
        others = self._other.setdefault(k, [])
        try:
            for raw in out:
                line = raw.strip()
                if not line.startswith("{"):
                    if line:  # what is not a record (a traceback, a notice): kept for the message
                        others.append(line)
                        del others[:-5]
                    continue
                with contextlib.suppress(ValueError):
                    self._inbox.put((k, json.loads(line)))
        except Exception as exc:  # whatever broke the stream ends this worker's output: say why
            others.append(str(exc)[:500])
        finally:
            self._inbox.put((k, None))

    def _tail(self, k: int) -> str:
        return " | ".join(self._other.get(k, [])) or "no output"

    def _account(self, k: int, rec: dict[str, Any] | None) -> None:
        if k in self._finished:
            return
        self._finished.add(k)
        if rec is None:
            self.lost.append(self.ids[k])
            return
        self.stats.add(rec.get("stats") or {})

    async def collect(self, sink: Callable[[Sample], None]) -> GeneratorStats:
        """Feed every worker's samples to sink until each has ended."""
        while len(self._finished) < len(self.ids):
            drained = 0
            while drained < 5000:
                try:
                    k, rec = self._inbox.get_nowait()
                except queue.Empty:
                    break
                drained += 1
                if rec is None or rec.get("t") == "done":
                    self._account(k, rec)
                elif rec.get("t") == "s":
                    s = Sample.from_json(rec)
                    s.sched += self.shift_s
                    sink(s)
            if not drained:
                await asyncio.sleep(0.05)
        return self.stats

    # -- stop ------------------------------------------------------------------------------------
    def stop(self) -> None:
        for worker in self.ids:
            with contextlib.suppress(DrillError, OSError):
                self.workers.stop(worker)

    def close(self) -> None:
        """Remove the workers and stop following them; safe to call more than once."""
        self.workers.cleanup()
        for out in self._followers:
            out.close()
        for t in self._threads:
            t.join(timeout=5)
        self._followers.clear()
