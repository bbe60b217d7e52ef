"""A throwaway Envoy with a direct-response listener: a target that is not the bottleneck."""

from __future__ import annotations

import json
import os
import subprocess
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from failover_drill.platforms.envoy.binary import resolve_envoy
from failover_drill.platforms.ports import allocate


@contextmanager
def direct_envoy(concurrency: int = 1) -> Iterator[str]:
    with direct_envoy_process(concurrency) as (url, _):
        yield url


def cpu_seconds(pid: int) -> float:
    """User + system CPU of a process, all its threads, from /proc (Linux)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@contextmanager
def direct_envoy_process(concurrency: int = 1) -> Iterator[tuple[str, int]]:
    """The listener's URL and the Envoy's pid (to read what the target itself costs)."""
    envoy, _ = resolve_envoy()
    ports = allocate(["listener", "admin"])
    cfg = {
        "admin": {"address": {"socket_address": {"address": "127.0.0.1", "port_value": ports["admin"]}}},
        "static_resources": {
            "listeners": [
                {
                    "name": "direct",
                    "address": {"socket_address": {"address": "127.0.0.1", "port_value": ports["listener"]}},
                    "filter_chains": [
                        {
                            "filters": [
                                {
                                    "name": "envoy.filters.network.http_connection_manager",
                                    "typed_config": {
                                        "@type": "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager",
                                        "stat_prefix": "direct",
                                        "route_config": {
                                            "virtual_hosts": [
                                                {
                                                    "name": "d",
                                                    "domains": ["*"],
                                                    "routes": [
                                                        {
                                                            "match": {"prefix": "/"},
                                                            "direct_response": {
                                                                "status": 201,
                                                                "body": {"inline_string": '{"payment_id":"pay_bench"}'},
                                                            },
                                                            "response_headers_to_add": [
                                                                {"header": {"key": "x-served-region", "value": "bench"}}
                                                            ],
                                                        }
                                                    ],
                                                }
                                            ]
                                        },
                                        # Read the whole request body before the direct response:
                                        # answering a POST early makes Envoy close the connection,
                                        # and every request would pay for a new one.
                                        "http_filters": [
                                            {
                                                "name": "envoy.filters.http.buffer",
                                                "typed_config": {
                                                    "@type": "type.googleapis.com/envoy.extensions.filters.http.buffer.v3.Buffer",
                                                    "max_request_bytes": 65536,
                                                },
                                            },
                                            {
                                                "name": "envoy.filters.http.router",
                                                "typed_config": {
                                                    "@type": "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router"
                                                },
                                            },
                                        ],
                                    },
                                }
                            ]
                        }
                    ],
                }
            ]
        },
    }
    with tempfile.TemporaryDirectory() as tmp:
        f = Path(tmp) / "envoy.json"
        f.write_text(json.dumps(cfg))
        proc = subprocess.Popen(
            [
                str(envoy),
                "-c",
                str(f),
                "--disable-hot-restart",
                "--concurrency",
                str(concurrency),
                "--log-level",
                "error",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            url = f"http://127.0.0.1:{ports['listener']}"
            for _ in range(100):
                try:
                    urllib.request.urlopen(url, timeout=0.2).read()
                    break
                except OSError:
                    time.sleep(0.05)
            yield url, proc.pid
        finally:
            proc.terminate()
            proc.wait(5)
