"""A platform held in memory, for testing the drill's own logic in seconds: the order of injects and
reverts, what reaches the fault ledger, Ctrl-C. Its front door is a small HTTP server in this
process that answers payments, and fails them with 503 while a fault is on, so the drill measures
something real; no fleet, no Envoy. The real-fleet tests (test_drill.py, test_faults.py) stay."""

from __future__ import annotations

import http.server
import threading
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

from failover_drill.errors import FaultError
from failover_drill.faults.model import Fault
from failover_drill.platforms.base import FleetStatus, LedgerCharge, PlatformEvent, Progress
from failover_drill.remote_workers import RemoteWorkers


class MemoryPlatform:
    name = "memory"

    def __init__(self, region: str = "us-east1", zone: str = "us-east1-a") -> None:
        self.region, self.zone = region, zone
        self.version = "stable"  # its x-served-version, as the replica program sends it
        self.calls: list[tuple[str, str]] = []  # (verb, fault label) in the order they happened
        self.active: set[str] = set()
        self.plans: dict[str, str] = {}
        self.charges: list[LedgerCharge] = []
        self.fail_inject: Exception | None = None
        self.on_inject: Callable[[Fault], None] | None = None
        self._server: http.server.ThreadingHTTPServer | None = None
        self._lock = threading.Lock()
        self.controllers_reach = "127.0.0.1"  # analysis_host(): loopback's other addresses serve too

    # -- lifecycle ------------------------------------------------------------------------------
    def up(self, progress: Progress | None = None, owner_pid: int | None = None) -> None:
        platform = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:
                pass

            def do_GET(self) -> None:
                self._answer(200, b"ok")

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("content-length") or 0))
                if platform.active:
                    self._answer(503, b"fault on")
                    return
                key = self.headers.get("idempotency-key") or ""
                with platform._lock:
                    platform.charges.append(LedgerCharge(key, platform.region, platform.zone, "r0", key, len(body)))
                # As the replica answers: a payment_id is what makes the client count it acknowledged.
                self._answer(200, b'{"payment_id":"%s","status":"captured"}' % key.encode())

            def _answer(self, code: int, body: bytes) -> None:
                self.send_response(code)
                self.send_header("content-length", str(len(body)))
                self.send_header("x-served-region", platform.region)
                self.send_header("x-served-zone", platform.zone)
                self.send_header("x-served-version", platform.version)
                self.end_headers()
                self.wfile.write(body)

        self._server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        # A short poll: shutdown() waits up to one poll interval (0.5 s by default) in every test.
        threading.Thread(target=self._server.serve_forever, args=(0.05,), daemon=True).start()

    def down(self, progress: Progress | None = None) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def is_up(self) -> bool:
        return self._server is not None

    def wait_steady(self, region: str, timeout_s: float = 30.0) -> None:
        pass

    def status(self) -> FleetStatus:
        return FleetStatus(up=self.is_up(), platform=self.name)

    def entrypoint(self) -> str:
        assert self._server is not None
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def mesh(self) -> str:
        return "istio"

    # -- faults ---------------------------------------------------------------------------------
    def plan_fault(self, fault: Fault) -> dict[str, Any]:
        self.calls.append(("plan", fault.label()))
        # A token per plan: revert must be handed back this very plan (from the fault ledger).
        token = uuid.uuid4().hex
        self.plans[fault.label()] = token
        return {"label": fault.label(), "token": token}

    def inject(self, fault: Fault, plan: dict[str, Any]) -> dict[str, Any]:
        self.calls.append(("inject", fault.label()))
        if self.on_inject is not None:
            self.on_inject(fault)
        if self.fail_inject is not None:
            raise self.fail_inject
        self.active.add(plan["label"])
        return {}

    def revert(self, fault: Fault, plan: dict[str, Any]) -> None:
        self.calls.append(("revert", fault.label()))
        if plan.get("label") != fault.label() or plan.get("token") != self.plans.get(fault.label()):
            raise FaultError(f"revert was handed a plan that plan_fault did not make for {fault.label()}: {plan}")
        self.active.discard(plan["label"])

    # -- observations ---------------------------------------------------------------------------
    def events(self, since_wall: float) -> list[PlatformEvent]:
        return []

    def ledger(self) -> list[LedgerCharge]:
        with self._lock:
            return list(self.charges)

    def locations(self) -> dict[str, list[str]]:
        return {self.region: [self.zone]}

    def plan_lines(self, faults: list[Fault]) -> list[str]:
        return []

    def recover_orphans(self, alive: Callable[[int], bool]) -> list[str]:
        return []

    def repair_leftovers(self) -> list[str]:
        return []

    def capacity_warning(self, rate_per_worker: float) -> str | None:
        return None

    def check_in_region_traffic(self) -> None:
        pass

    def traffic_workers(
        self, *, region: str, spec_json: str, duration_s: float, workers: int, key_prefix: str
    ) -> RemoteWorkers:
        raise NotImplementedError

    def analysis_host(self) -> str:
        return self.controllers_reach

    def region_kubes(self) -> dict[str, Any]:
        raise NotImplementedError


def state(tmp: Path) -> Path:
    return tmp / "state"
