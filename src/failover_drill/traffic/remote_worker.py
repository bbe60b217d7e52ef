"""One traffic worker as a process the drill does not own (a Kubernetes Job's pod in the users'
region): the drill's own generator and client, its samples written to stdout as NDJSON for
whoever follows the log.

    python -m failover_drill.traffic.remote_worker --url URL --region R --duration S \
        --spec '{"rate_rps": 400, ...}' --workers 2 --index 0 --key-prefix run-1 --control-dir DIR

Start: the worker prints {"t": "ready"} once loaded, then waits for DIR/start, a file holding the
wall-clock time of the schedule's origin (written by the drill, e.g. through `kubectl exec`).
The nodes of a kind fleet share the host's kernel clock, so that wall time means the same
instant here as in the drill. DIR/stop, SIGTERM or SIGINT end it early; it always ends with
{"t": "done", "stats": {...}} after the samples it has.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import sys
import time
from pathlib import Path
from typing import Any, TextIO

from failover_drill.clock import MonotonicClock
from failover_drill.config.scenario import TrafficSpec
from failover_drill.traffic import gc_quiet
from failover_drill.traffic.client import PaymentClient
from failover_drill.traffic.generator import OpenLoopGenerator
from failover_drill.traffic.samples import Sample
from failover_drill.traffic.schedule import Schedule

FLUSH_S = 0.1
POLL_S = 0.02


def _line(out: TextIO, record: dict[str, Any]) -> None:
    out.write(json.dumps(record, separators=(",", ":")) + "\n")


async def _wait_for_start(control: Path, timeout_s: float) -> float | None:
    """The start instant the drill writes, or None (told to stop, or timed out). An asyncio poll
    in the worker's own loop, not tenacity: the loop must stay free while it waits, and a file
    that does not exist yet is no error to retry."""
    deadline = time.monotonic() + timeout_s
    start, stop = control / "start", control / "stop"
    while time.monotonic() < deadline:
        if stop.exists():
            return None
        try:
            return float(start.read_text().strip())
        except (OSError, ValueError):  # not written yet, or written halfway
            await asyncio.sleep(POLL_S)
    return None


async def run(args: argparse.Namespace, out: TextIO) -> int:
    spec = TrafficSpec.model_validate_json(args.spec)
    n, k = args.workers, args.index
    control = Path(args.control_dir)
    client = PaymentClient.for_traffic(args.url, args.region, spec)
    buffered: list[Sample] = []
    gen = OpenLoopGenerator(
        client,
        Schedule.constant(spec.rate_rps / n, args.duration),
        MonotonicClock(),
        buffered.append,
        key_prefix=args.key_prefix,
        max_in_flight=max(1, spec.max_in_flight // n),
        seq_stride=n,
        seq_offset=k,
    )
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, gen.stop)
    gc_quiet.settle()
    _line(out, {"t": "ready", "worker": k})
    out.flush()
    try:
        wall = await _wait_for_start(control, args.start_timeout)
        if wall is None:
            _line(out, {"t": "done", "worker": k, "stats": vars(gen.stats), "started": False})
            return 0
        # The origin on this process's monotonic clock: the same instant as `wall` on the drill's.
        origin = time.monotonic() + (wall - time.time())

        async def flush() -> None:
            while True:
                await asyncio.sleep(FLUSH_S)
                batch = buffered[:]
                buffered.clear()
                for s in batch:
                    _line(out, s.to_json())
                out.flush()
                if (control / "stop").exists():
                    gen.stop()

        flushing = asyncio.create_task(flush())
        stats = await gen.run(origin, offset_s=k / spec.rate_rps)
        flushing.cancel()
        for s in buffered:
            _line(out, s.to_json())
        _line(out, {"t": "done", "worker": k, "stats": vars(stats), "started": True})
    finally:
        out.flush()
        await client.aclose()
    return 0


def parse(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description="failover-drill traffic worker (samples as NDJSON on stdout)")
    p.add_argument("--url", required=True, help="the MultiClusterService's address, as the users reach it")
    p.add_argument("--region", required=True, help="the users' region (x-client-region)")
    p.add_argument("--duration", type=float, required=True, help="seconds of schedule")
    p.add_argument("--spec", required=True, help="the scenario's traffic section as JSON")
    p.add_argument("--workers", type=int, default=1)
    p.add_argument(
        "--index",
        type=int,
        default=int(os.environ.get("JOB_COMPLETION_INDEX", "0")),
        help="this worker's index (an Indexed Job sets JOB_COMPLETION_INDEX)",
    )
    p.add_argument("--key-prefix", required=True)
    p.add_argument("--control-dir", required=True)
    p.add_argument("--start-timeout", type=float, default=600.0)
    args = p.parse_args(argv)
    if not 0 <= args.index < args.workers:
        p.error(f"--index {args.index} is outside 0..{args.workers - 1}")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    Path(args.control_dir).mkdir(parents=True, exist_ok=True)
    try:
        import uvloop

        factory = uvloop.new_event_loop
    except ImportError:  # the drill runs without it too, only slower
        factory = None
    with asyncio.Runner(loop_factory=factory) as runner:
        return runner.run(run(args, sys.stdout))


if __name__ == "__main__":
    raise SystemExit(main())
