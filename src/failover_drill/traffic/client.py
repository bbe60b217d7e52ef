"""The payment client: attempts straight through the lean aiohttp transport (bytes in, status,
headers and body out), with a payment client's own retries (tenacity) that reuse the
Idempotency-Key, and a deadline per attempt."""

from __future__ import annotations

from dataclasses import dataclass

import aiohttp
from tenacity import AsyncRetrying, retry_if_result, stop_after_attempt, wait_exponential_jitter

from failover_drill.config.scenario import RetryPolicy, TrafficSpec
from failover_drill.traffic.samples import OK, classify
from failover_drill.traffic.transport import LeanAiohttpTransport, RawHeaders

SERVED_REGION = b"x-served-region"
SERVED_ZONE = b"x-served-zone"
SERVED_VERSION = b"x-served-version"


def served_by(raw: RawHeaders) -> tuple[str | None, str | None]:
    """(x-served-region, x-served-zone) from raw headers: one pass, no per-lookup normalising."""
    region, zone, _ = _scan(raw)
    return region, zone


def _scan(raw: RawHeaders) -> tuple[str | None, str | None, str | None]:
    """served_by and the x-served-version, in the same pass."""
    region = zone = version = None
    for k, v in raw:
        if len(k) in (13, 15, 16) and k[:9].lower() == b"x-served-":
            name = k.lower()
            if name == SERVED_REGION:
                region = v.decode("latin-1")
            elif name == SERVED_ZONE:
                zone = v.decode("latin-1")
            elif name == SERVED_VERSION:
                version = v.decode("latin-1")
    return region, zone, version


@dataclass(slots=True)
class Attempt:
    status: int
    err: str
    region: str | None = None
    zone: str | None = None
    acked: bool = False
    version: str | None = None


@dataclass(slots=True)
class PaymentResult:
    last: Attempt
    attempts: int
    raw_failures: int


def _retry_class(err: str) -> str | None:
    if err == OK:
        return None
    if err == "timeout":
        return "timeout"
    if err in ("connect", "reset"):
        return err
    if err.startswith("http_4"):
        return None
    return "5xx"


class PaymentClient:
    def __init__(
        self,
        base_url: str,
        client_region: str,
        timeout_s: float,
        retry: RetryPolicy,
        max_connections: int = 4000,
    ) -> None:
        self.url = base_url.rstrip("/") + "/v1/payments"
        self.region = client_region
        self.timeout_s = timeout_s
        # One deadline per attempt, connect to last byte, kept by aiohttp's own timer: an
        # asyncio.timeout() around the attempt cost a second timer per request.
        self._timeout = aiohttp.ClientTimeout(total=timeout_s)
        self.retry = retry
        self.transport = LeanAiohttpTransport(max_connections=max_connections)

    @classmethod
    def for_traffic(cls, base_url: str, client_region: str, spec: TrafficSpec) -> PaymentClient:
        return cls(base_url, client_region, spec.timeout_s, spec.retry, max_connections=spec.max_in_flight)

    async def aclose(self) -> None:
        await self.transport.aclose()

    async def _attempt(self, key: str, amount_cents: int) -> Attempt:
        payload = b'{"amount_cents": %d, "currency": "USD"}' % amount_cents
        headers = {"idempotency-key": key, "x-client-region": self.region, "content-type": "application/json"}
        try:
            reply = await self.transport.send("POST", self.url, headers, payload, self._timeout)
        except TimeoutError:
            return Attempt(0, "timeout")
        except aiohttp.ClientConnectorError:
            return Attempt(0, "connect")
        except (aiohttp.ClientError, OSError):
            return Attempt(0, "reset")
        region, zone, version = _scan(reply.headers)
        body = reply.body.decode(errors="replace")
        err = classify(reply.status, body)
        return Attempt(
            status=reply.status,
            err=err,
            region=region,
            zone=zone,
            acked=err == OK and '"payment_id"' in body,
            version=version,
        )

    async def pay(self, key: str, amount_cents: int) -> PaymentResult:
        if self.retry.attempts <= 1:
            a = await self._attempt(key, amount_cents)
            return PaymentResult(a, 1, 0 if a.err == OK else 1)
        retry_on = set(self.retry.on)
        tried: list[Attempt] = []

        def should_retry(a: Attempt) -> bool:
            cls = _retry_class(a.err)
            return cls is not None and cls in retry_on

        async def once() -> Attempt:
            a = await self._attempt(key, amount_cents)
            tried.append(a)
            return a

        retrying = AsyncRetrying(
            stop=stop_after_attempt(self.retry.attempts),
            wait=wait_exponential_jitter(initial=self.retry.backoff_ms / 1000, max=self.retry.backoff_max_ms / 1000),
            retry=retry_if_result(should_retry),
            # When attempts run out, the user sees the last answer, not a RetryError.
            retry_error_callback=lambda state: state.outcome.result() if state.outcome else None,
        )
        last: Attempt = await retrying(once)
        return PaymentResult(last, len(tried), sum(1 for a in tried if a.err != OK))
