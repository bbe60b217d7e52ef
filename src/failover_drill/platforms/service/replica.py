"""One payment-gateway replica: a bare ASGI app served by uvicorn.

POST /v1/payments (Idempotency-Key header) records the payment in the region's ledger and answers
with the payment id; headers name the region, zone and replica that served it. /healthz answers
probes. /_drill/faults lets the sandbox make this replica gray-fail (brownout) or lose a response
after committing (the duplicate-charge case); the gateways never route /_drill/ from outside.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import random
import uuid
from collections.abc import Awaitable, Callable, MutableMapping
from pathlib import Path
from typing import Any

from failover_drill.platforms.service import ledger_db

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]


class PaymentApp:
    def __init__(
        self, region: str, zone: str, replica: str, ledger: Path, version: str = "stable", fail_pct: float = 0.0
    ) -> None:
        self.where = (region, zone, replica)
        self.conn = ledger_db.connect(ledger)
        # A version's own failure share (a bad canary browns out from its first request), set at
        # start from its pod's args; the /_drill/faults switch replaces it while a fault is on.
        self.fail_pct = fail_pct
        self.delay_ms = 0.0
        self.drop_after_commit_pct = 0.0
        self.rng = random.Random()
        self.headers = [
            (b"x-served-region", region.encode()),
            (b"x-served-zone", zone.encode()),
            (b"x-served-replica", replica.encode()),
            (b"x-served-version", version.encode()),
            (b"content-type", b"application/json"),
        ]

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            while True:
                msg = await receive()
                if msg["type"] == "lifespan.startup":
                    await send({"type": "lifespan.startup.complete"})
                elif msg["type"] == "lifespan.shutdown":
                    self.conn.close()
                    await send({"type": "lifespan.shutdown.complete"})
                    return
        if scope["type"] != "http":
            return
        path, method = scope["path"], scope["method"]
        body = await _read_body(receive)
        if path == "/healthz":
            await self._reply(send, 200, {"status": "ok", "replica": self.where[2]})
        elif path == "/v1/payments" and method == "POST":
            await self._payment(scope, body, send)
        elif path == "/_drill/faults" and method == "POST":
            await self._set_faults(body, send)
        elif path == "/_drill/faults" and method == "GET":
            # `recover` reads the switches to find a fault its ledger lost (issue 16).
            await self._reply(send, 200, self._faults())
        else:
            await self._reply(send, 404, {"error": "not found"})

    async def _payment(self, scope: Scope, body: bytes, send: Send) -> None:
        key = _header(scope, b"idempotency-key")
        if not key:
            await self._reply(send, 400, {"error": "Idempotency-Key header is required"})
            return
        if self.delay_ms > 0:
            await asyncio.sleep(self.delay_ms / 1000.0)
        if self.fail_pct > 0 and self.rng.random() * 100 < self.fail_pct:
            await self._reply(send, 503, {"error": "brownout"})
            return
        try:
            req = json.loads(body or b"{}")
            amount = int(req.get("amount_cents", 0))
            currency = str(req.get("currency", "USD"))
        except (ValueError, TypeError, AttributeError):
            await self._reply(send, 400, {"error": "body must be JSON with amount_cents and currency"})
            return
        stored, created = ledger_db.charge(self.conn, key, f"pay_{uuid.uuid4().hex[:20]}", amount, currency, self.where)
        if self.drop_after_commit_pct > 0 and self.rng.random() * 100 < self.drop_after_commit_pct:
            # The charge is committed but the answer never comes: the client times out and retries.
            await asyncio.sleep(3600)
            return
        await self._reply(
            send,
            201 if created else 200,
            {
                "payment_id": stored.payment_id,
                "status": "captured",
                "amount_cents": stored.amount_cents,
                "currency": stored.currency,
                "region": stored.region,
                "replayed": not created,
            },
            extra=[(b"x-idempotent-replay", b"false" if created else b"true")],
        )

    async def _set_faults(self, body: bytes, send: Send) -> None:
        try:
            req = json.loads(body or b"{}")
            self.fail_pct = float(req.get("fail_pct", 0.0))
            self.delay_ms = float(req.get("delay_ms", 0.0))
            self.drop_after_commit_pct = float(req.get("drop_after_commit_pct", 0.0))
        except (ValueError, TypeError, AttributeError):
            await self._reply(send, 400, {"error": "bad fault body"})
            return
        await self._reply(send, 200, self._faults())

    def _faults(self) -> dict[str, Any]:
        return {
            "fail_pct": self.fail_pct,
            "delay_ms": self.delay_ms,
            "drop_after_commit_pct": self.drop_after_commit_pct,
        }

    async def _reply(
        self, send: Send, status: int, payload: dict[str, Any], extra: list[tuple[bytes, bytes]] | None = None
    ) -> None:
        data = json.dumps(payload).encode()
        headers = [*self.headers, (b"content-length", str(len(data)).encode()), *(extra or [])]
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": data})


async def _read_body(receive: Receive) -> bytes:
    chunks = []
    while True:
        msg = await receive()
        if msg["type"] != "http.request":
            break
        chunks.append(msg.get("body", b""))
        if not msg.get("more_body"):
            break
    return b"".join(chunks)


def _header(scope: Scope, name: bytes) -> str | None:
    for k, v in scope["headers"]:
        if k == name:
            return str(v.decode("latin-1"))
    return None


def preload() -> None:
    """What main() imports on its way to serving, for a fork server to import once for every
    replica it forks (platforms/forkserver.py)."""
    import uvicorn
    import uvicorn.lifespan.on
    import uvicorn.loops.auto
    import uvicorn.protocols.http.httptools_impl
    import uvicorn.protocols.websockets.auto  # noqa: F401  (uvicorn resolves these by name)

    with contextlib.suppress(ImportError):
        import uvloop  # noqa: F401


def main(argv: list[str] | None = None) -> None:
    import uvicorn

    p = argparse.ArgumentParser(description="payment-gateway replica")
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--region", default="local")
    p.add_argument("--zone", default="local-a")
    p.add_argument("--name", default="replica-0")
    p.add_argument("--ledger", type=Path, required=True)
    p.add_argument("--version", default="stable", help="the version this replica reports (x-served-version)")
    p.add_argument("--fail-pct", type=float, default=0.0, help="share of payments answered 503 from the start")
    a = p.parse_args(argv)
    app = PaymentApp(a.region, a.zone, a.name, a.ledger, a.version, a.fail_pct)
    uvicorn.run(
        app,
        host=a.host,
        port=a.port,
        log_level="warning",
        access_log=False,
        http="httptools",
        loop="auto",  # uvloop when installed
        lifespan="on",
        timeout_graceful_shutdown=1,
    )


if __name__ == "__main__":
    main()
