"""An aiohttp transport cut to what an open-loop payment generator needs, usable as an httpx
transport too.

The generator's attempts go through `send`: bytes in, status, raw headers and body out, on one
aiohttp session. Building an httpx.Request and an httpx.Response around each attempt cost ~15% of
a request's CPU at 2,000 req/s (header normalising, a URL copied per Request), CPU the open loop
takes from the fleet it measures on a two-core machine (bench/generator_vs_aiohttp.py, README).
`handle_async_request` serves any other httpx client over the same session.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import aiohttp
import httpx

RawHeaders = tuple[tuple[bytes, bytes], ...]


@dataclass(slots=True)
class Reply:
    status: int
    headers: RawHeaders
    body: bytes


class LeanAiohttpTransport(httpx.AsyncBaseTransport):
    def __init__(self, max_connections: int = 4000) -> None:
        self.max_connections = max_connections
        self._session: aiohttp.ClientSession | None = None

    def _client(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(limit=self.max_connections, ttl_dns_cache=None),
                # Deadlines belong to the caller (one per attempt), not to the session.
                timeout=aiohttp.ClientTimeout(total=None),
                # A payment client sends no cookies; the jar's per-request filtering is pure cost.
                cookie_jar=aiohttp.DummyCookieJar(),
                # httpx decodes what it is handed; `send` asks for decoding per request.
                auto_decompress=False,
            )
        return self._session

    async def send(
        self,
        method: str,
        url: str,
        headers: Mapping[str, str],
        body: bytes | None,
        deadline: aiohttp.ClientTimeout,
    ) -> Reply:
        """One request, its body read whole and decoded; `deadline` covers connect to last byte
        (aiohttp raises TimeoutError)."""
        async with self._client().request(
            method,
            url,
            headers=headers,
            data=body,
            allow_redirects=False,
            timeout=deadline,
            auto_decompress=True,
        ) as resp:
            return Reply(resp.status, resp.raw_headers, await resp.read())

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        stream = request.stream
        # A body given as bytes sits in a ByteStream: take it as is rather than through aread().
        data = b"".join(stream) if isinstance(stream, httpx.ByteStream) else await request.aread()
        # The body goes out whole, so aiohttp sets its length: a streamed body's chunked framing
        # must not be announced as well.
        headers = [
            (k.decode("latin-1"), v.decode("latin-1"))
            for k, v in request.headers.raw
            if k.lower() != b"transfer-encoding"
        ]
        async with self._client().request(
            request.method,
            str(request.url),
            headers=headers,
            data=data or None,
            allow_redirects=False,
            compress=False,
        ) as resp:
            body = await resp.read()
        # Raw byte pairs and the body as sent: httpx decodes both as its own responses do.
        return httpx.Response(resp.status, headers=resp.raw_headers, stream=httpx.ByteStream(body), request=request)

    async def aclose(self) -> None:
        if self._session is not None:
            await self._session.close()
