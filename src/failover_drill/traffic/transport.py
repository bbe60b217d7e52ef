"""An httpx transport on aiohttp, cut to what an open-loop payment generator needs.

httpx-aiohttp's general transport wraps every response in a stream and maps every option; with
keep-alive connections that machinery cost ~1.5x raw aiohttp's CPU per request here
(bench/generator_vs_aiohttp.py). This one sends the httpx.Request as is and returns an
httpx.Response over the body aiohttp read (a ByteStream, unread, as any httpx transport returns
it): the client keeps the httpx API, the hot path stays aiohttp's.
"""

from __future__ import annotations

import aiohttp
import httpx


class LeanAiohttpTransport(httpx.AsyncBaseTransport):
    def __init__(self, max_connections: int = 4000) -> None:
        self.max_connections = max_connections
        self._session: aiohttp.ClientSession | None = None
        self._urls: dict[int, tuple[httpx.URL, str]] = {}

    def _client(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(limit=self.max_connections, ttl_dns_cache=None),
                # Deadlines belong to the caller (one per attempt), not to the session.
                timeout=aiohttp.ClientTimeout(total=None),
                # A payment client sends no cookies; the jar's per-request filtering is pure cost.
                cookie_jar=aiohttp.DummyCookieJar(),
                auto_decompress=False,
                skip_auto_headers=("User-Agent", "Accept-Encoding"),
            )
        return self._session

    def _url(self, url: httpx.URL) -> str:
        # The client reuses one URL object for every request: turn it into text once.
        hit = self._urls.get(id(url))
        if hit is None or hit[0] is not url:
            hit = (url, str(url))
            self._urls[id(url)] = hit
        return hit[1]

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
            self._url(request.url),
            headers=headers,
            data=data or None,
            allow_redirects=False,
            compress=False,
        ) as resp:
            body = await resp.read()
        # Raw byte pairs: httpx decodes header text only when someone reads it by name.
        return httpx.Response(
            resp.status,
            headers=resp.raw_headers,
            stream=httpx.ByteStream(body),
            request=request,
        )

    async def aclose(self) -> None:
        if self._session is not None:
            await self._session.close()
