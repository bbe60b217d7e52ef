"""The payment client on its lean transport, against a real payment-gateway replica process:
what it sends (body, Idempotency-Key, client region) and what it reads back (served region and
zone, acknowledgement), and how it names a refused connection."""

from __future__ import annotations

import asyncio
import dataclasses
import gzip
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from failover_drill.config.scenario import RetryPolicy
from failover_drill.platforms.ports import allocate
from failover_drill.traffic.client import PaymentClient, _body, _scan, served_by
from failover_drill.traffic.samples import Sample
from failover_drill.traffic.transport import LeanAiohttpTransport
from tests.conftest import lone_replica


@pytest.fixture(scope="module")
def replica(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    tmp = tmp_path_factory.mktemp("replica")
    with lone_replica(tmp, "eu-west1", "eu-west1-b") as url:
        yield url, tmp / "ledger.sqlite"


def test_served_by_reads_raw_headers_in_any_case() -> None:
    raw = [(b"Content-Type", b"application/json"), (b"X-Served-Zone", b"us-east1-c"), (b"x-served-region", b"us-east1")]
    assert served_by(raw) == ("us-east1", "us-east1-c")
    assert served_by([(b"x-served-regionx", b"no"), (b"server", b"envoy")]) == (None, None)


def test_an_encoded_body_is_decoded_and_an_identity_body_taken_as_sent() -> None:
    """The fast path (the ByteStream's bytes as they are) is only for bodies without a coding."""
    text = b'{"payment_id": "pay_1"}'
    raw = [(b"Content-Encoding", b"gzip"), (b"x-served-region", b"eu-west1")]
    region, zone, version, encoded = _scan(raw)
    assert (region, zone, version, encoded) == ("eu-west1", None, None, True)
    gz = httpx.Response(201, headers=httpx.Headers(raw), stream=httpx.ByteStream(gzip.compress(text)))
    assert asyncio.run(_body(gz, encoded)) == text
    plain_raw = [(b"content-encoding", b"identity"), (b"content-length", b"%d" % len(text))]
    assert _scan(plain_raw)[3] is False
    assert _scan([(b"x-served-version", b"canary"), (b"content-length", b"2")])[2] == "canary"
    plain = httpx.Response(201, headers=httpx.Headers(plain_raw), stream=httpx.ByteStream(text))
    assert asyncio.run(_body(plain, False)) == text


def test_a_sample_crosses_a_workers_pipe_whole() -> None:
    """Every field, in order: a field added to Sample but not to its row would shift the rest."""
    s = Sample(7, 1.25, 12.5, 0.3, 503, "upstream_connect", "eu-west1", "eu-west1-b", 3, 2, True, "run-7")
    assert Sample(*s.to_row()) == s
    assert len(s.to_row()) == len(dataclasses.fields(Sample))


def test_a_payment_reaches_the_replica_and_is_acknowledged(replica: tuple[str, Path]) -> None:
    url, ledger = replica

    async def go() -> tuple[object, object]:
        client = PaymentClient(url, "us-east1", timeout_s=2.0, retry=RetryPolicy())
        try:
            first = await client.pay("pay-test-1", 4321)
            again = await client.pay("pay-test-1", 4321)
            return first, again
        finally:
            await client.aclose()

    first, again = asyncio.run(go())
    a = first.last  # type: ignore[attr-defined]
    assert (a.status, a.err, a.region, a.zone, a.acked) == (201, "ok", "eu-west1", "eu-west1-b", True)
    assert again.last.status == 200  # type: ignore[attr-defined]  # replayed under the same key, not charged twice
    with sqlite3.connect(ledger) as db:
        rows = db.execute("SELECT amount_cents FROM payments WHERE idempotency_key = 'pay-test-1'").fetchall()
    assert rows == [(4321,)]


def test_the_transport_answers_as_an_httpx_transport(replica: tuple[str, Path]) -> None:
    """Any httpx request (str body, streamed body) through the transport, not only the client's."""
    url, _ = replica

    async def go() -> list[httpx.Response]:
        async with httpx.AsyncClient(transport=LeanAiohttpTransport()) as http:
            plain = await http.post(url + "/v1/payments", json={"amount_cents": 5}, headers={"Idempotency-Key": "h1"})

            async def chunks():  # type: ignore[no-untyped-def]
                yield b'{"amount_cents": '
                yield b"6}"

            streamed = await http.post(url + "/v1/payments", content=chunks(), headers={"Idempotency-Key": "h2"})
            missing = await http.get(url + "/nope")
            return [plain, streamed, missing]

    plain, streamed, missing = asyncio.run(go())
    assert plain.status_code == 201 and plain.json()["amount_cents"] == 5
    assert plain.headers["X-Served-Region"] == "eu-west1"
    assert streamed.status_code == 201 and streamed.json()["amount_cents"] == 6
    assert missing.status_code == 404


def test_a_refused_connection_is_a_connect_failure() -> None:
    port = allocate(["nobody"], 0)["nobody"]

    async def go() -> object:
        client = PaymentClient(f"http://127.0.0.1:{port}", "us-east1", timeout_s=2.0, retry=RetryPolicy())
        try:
            return await client.pay("k", 1)
        finally:
            await client.aclose()

    res = asyncio.run(go())
    assert res.last.err == "connect" and res.raw_failures == 1  # type: ignore[attr-defined]
