"""The payment client on its lean transport, against a real payment-gateway replica process:
what it sends (body, Idempotency-Key, client region) and what it reads back (served region and
zone, acknowledgement), and how it names a refused connection."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import gzip
import sqlite3
import threading
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from aiohttp import web

from failover_drill.config.scenario import RetryPolicy
from failover_drill.platforms.ports import allocate
from failover_drill.traffic.client import PaymentClient, _scan, served_by
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


def test_version_header_is_read_and_other_headers_ignored() -> None:
    assert _scan(((b"x-served-version", b"canary"), (b"content-length", b"2")))[2] == "canary"
    assert _scan(((b"X-Served-Versionx", b"no"), (b"content-encoding", b"gzip"))) == (None, None, None)


@contextlib.contextmanager
def odd_server() -> Iterator[str]:
    """A real HTTP server on a socket, answering as no replica does: a gzipped acknowledgement,
    an answer that never comes, a connection dropped before the status line."""

    async def gzipped(request: web.Request) -> web.Response:
        body = gzip.compress(b'{"payment_id": "pay_9", "status": "captured"}')
        return web.Response(
            status=201,
            body=body,
            headers={"Content-Encoding": "gzip", "Content-Type": "application/json", "X-Served-Region": "eu-west1"},
        )

    async def hang(request: web.Request) -> web.Response:
        await asyncio.sleep(3)
        return web.Response(status=201)

    async def drop(request: web.Request) -> web.Response:
        assert request.transport is not None
        request.transport.abort()
        await asyncio.sleep(1)
        return web.Response(status=201)

    port = allocate(["odd"], 0)["odd"]
    started = threading.Event()
    loop = asyncio.new_event_loop()

    async def serve() -> web.AppRunner:
        app = web.Application()
        for path, handler in (("/gzip", gzipped), ("/hang", hang), ("/drop", drop)):
            app.router.add_post(path + "/v1/payments", handler)
        runner = web.AppRunner(app, shutdown_timeout=0.5)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", port).start()
        return runner

    runner = loop.run_until_complete(serve())
    thread = threading.Thread(target=lambda: (started.set(), loop.run_forever()), daemon=True)
    thread.start()
    started.wait()
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        asyncio.run_coroutine_threadsafe(runner.cleanup(), loop).result(10)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)
        loop.close()


def test_the_client_decodes_a_coded_body_and_names_timeouts_and_resets() -> None:
    with odd_server() as base:

        async def go(path: str) -> object:
            client = PaymentClient(base + path, "us-east1", timeout_s=0.5, retry=RetryPolicy())
            try:
                return (await client.pay("k-" + path, 1)).last
            finally:
                await client.aclose()

        coded = asyncio.run(go("/gzip"))
        hung = asyncio.run(go("/hang"))
        dropped = asyncio.run(go("/drop"))
    assert (coded.status, coded.err, coded.region, coded.acked) == (201, "ok", "eu-west1", True)  # type: ignore[attr-defined]
    # The server answers after 3 s: a timeout here is the attempt's own 0.5 s deadline.
    assert (hung.status, hung.err) == (0, "timeout")  # type: ignore[attr-defined]
    assert (dropped.status, dropped.err) == (0, "reset")  # type: ignore[attr-defined]


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
