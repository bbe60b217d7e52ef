"""Envoy configuration for the sandbox, translated from the mesh policy the way istiod / Cilium
and a multi-cluster load balancer would (FACTS.md):

- front door (the MultiClusterService): one cluster per client region, regions as priorities by
  RTT, active health checks from the BackendConfig, no retries (payments are POSTs);
- regional gateway: locality priorities (home zone, rest of region, remote regions through their
  east-west gateways over mTLS), outlier detection and retries from the DestinationRule and
  VirtualService, circuit breakers opened as istiod does;
- every inbound hop carries a fault filter keyed per link, so baseline latency, link latency and
  partitions change live through /runtime_modify, with no restart and no dropped connection.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from failover_drill.config.manifests import MeshPolicy
from failover_drill.platforms.envoy.layout import FRONT_DOOR, Layout
from failover_drill.platforms.pki import TRUST_DOMAIN

T = "type.googleapis.com/"
FAULT_FILTER = "envoy.filters.http.fault"
MAX = 4294967295
SAN_PREFIX = f"spiffe://{TRUST_DOMAIN}/ns/istio-system/sa/eastwestgateway-"
PARTITION_DELAY_MS = 3_600_000  # a black hole: requests wait until someone's timeout fires
# Envoy's fault filter only has a fixed delay. Jitter is a stack of extra fault filters, each
# adding a binary-weighted step (8, 4, 2, 1 parts of 15) to half the requests independently:
# together a uniform spread over 16 evenly spaced delays.
JITTER_WEIGHTS = (8, 4, 2, 1)
JITTER_FILTERS = tuple(f"{FAULT_FILTER}.jitter{i}" for i in range(len(JITTER_WEIGHTS)))


def link_key(src: str, dst: str) -> str:
    return f"link.{src}.{dst}"


def jitter_key(key: str, step: int) -> str:
    return f"{key}.jitter{step}"


def jitter_steps_ms(amplitude_ms: float) -> list[int]:
    """Delay steps (ms) of the jitter filters for a spread of +-amplitude around the mean."""
    total = sum(JITTER_WEIGHTS)
    return [round(2 * amplitude_ms * w / total) for w in JITTER_WEIGHTS]


def _dur(seconds: float) -> str:
    return f"{seconds:.3f}s"


def _addr(port: int | tuple[str, int]) -> dict[str, Any]:
    host, port = port if isinstance(port, tuple) else ("127.0.0.1", port)
    return {"socket_address": {"address": host, "port_value": port}}


def write_atomic(path: Path, data: dict[str, Any]) -> None:
    """Envoy's file watchers only see a rename (FACTS.md): write aside, then move into place."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(data, indent=1))
    os.replace(tmp, path)


def _file_source(path: Path) -> dict[str, Any]:
    return {
        "resource_api_version": "V3",
        "path_config_source": {"path": str(path), "watched_directory": {"path": str(path.parent)}},
    }


def _fault(key: str | None = None, abort: bool = False) -> dict[str, Any]:
    """A fault config whose percentages come from runtime keys (0 unless set)."""
    cfg: dict[str, Any] = {
        "@type": T + "envoy.extensions.filters.http.fault.v3.HTTPFault",
        "delay": {"fixed_delay": "0.001s", "percentage": {"numerator": 0, "denominator": "HUNDRED"}},
    }
    if key:
        cfg["delay_percent_runtime"] = f"{key}.delay_percent"
        cfg["delay_duration_runtime"] = f"{key}.delay_ms"
    if abort:
        cfg["abort"] = {"http_status": 503, "percentage": {"numerator": 0, "denominator": "HUNDRED"}}
        if key:
            cfg["abort_percent_runtime"] = f"{key}.abort_percent"
            cfg["abort_http_status_runtime"] = f"{key}.http_status"
    return cfg


def _hcm(
    name: str,
    routes: list[dict[str, Any]],
    headers_to_add: list[dict[str, Any]] | None = None,
    base_fault: dict[str, Any] | None = None,
    read_body_first: bool = False,
) -> dict[str, Any]:
    # Envoy closes a keep-alive connection when it answers (abort, no healthy upstream) before the
    # request body has arrived; a load balancer in front of clients should not turn every error into
    # a reconnect, so the front door reads the (small) payment body first.
    buffer = [
        {
            "name": "envoy.filters.http.buffer",
            "typed_config": {"@type": T + "envoy.extensions.filters.http.buffer.v3.Buffer", "max_request_bytes": 65536},
        }
    ]
    return {
        "name": "envoy.filters.network.http_connection_manager",
        "typed_config": {
            "@type": T + "envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager",
            "stat_prefix": name,
            "codec_type": "AUTO",
            "route_config": {
                "name": name,
                "request_headers_to_add": headers_to_add or [],
                "virtual_hosts": [{"name": name, "domains": ["*"], "routes": routes}],
            },
            # Envoy's own 503 bodies do not say why; add the transport failure (TLS, refused, ...) and
            # the response details so clients can name the error class.
            "local_reply_config": {
                "body_format": {
                    "text_format_source": {
                        "inline_string": "%LOCAL_REPLY_BODY% transport=%UPSTREAM_TRANSPORT_FAILURE_REASON% "
                        "details=%RESPONSE_CODE_DETAILS%\n"
                    }
                }
            },
            "http_filters": [
                *(buffer if read_body_first else []),
                {"name": FAULT_FILTER, "typed_config": base_fault or _fault()},
                *({"name": name, "typed_config": _fault()} for name in JITTER_FILTERS),
                {
                    "name": "envoy.filters.http.router",
                    "typed_config": {"@type": T + "envoy.extensions.filters.http.router.v3.Router"},
                },
            ],
        },
    }


def _listener(name: str, port: int, hcm: dict[str, Any], tls: dict[str, Any] | None = None) -> dict[str, Any]:
    chain: dict[str, Any] = {"filters": [hcm]}
    if tls:
        chain["transport_socket"] = {"name": "envoy.transport_sockets.tls", "typed_config": tls}
    return {"name": name, "address": _addr(port), "filter_chains": [chain]}


def _header_match(name: str, value: str) -> dict[str, Any]:
    return {"name": name, "string_match": {"exact": value}}


def _route(
    cluster: str,
    *,
    prefix: str = "/",
    path: str | None = None,
    header: tuple[str, str] | None = None,
    fault_key: str | None = None,
    timeout_s: float | None = None,
    retry: dict[str, Any] | None = None,
) -> dict[str, Any]:
    match: dict[str, Any] = {"path": path} if path else {"prefix": prefix}
    if header:
        match["headers"] = [_header_match(*header)]
    action: dict[str, Any] = {"timeout": _dur(timeout_s) if timeout_s else "0s"}
    if cluster == SPLIT:
        action["weighted_clusters"] = split_clusters()
    else:
        action["cluster"] = cluster
    if retry:
        action["retry_policy"] = retry
    r: dict[str, Any] = {"match": match, "route": action}
    if fault_key:
        r["typed_per_filter_config"] = {
            FAULT_FILTER: _fault(fault_key),
            **{name: _fault(jitter_key(fault_key, i)) for i, name in enumerate(JITTER_FILTERS)},
        }
    return r


# A route to SPLIT goes to the payment-gateway's stable and canary clusters by weight, the
# VirtualService's weights that Argo Rollouts writes: Istio turns a VirtualService route with two
# destinations into a route with weighted clusters, and the mesh agent (the kwok platform's
# istiod) sets the weights through the gateway's runtime. Until it does, all goes to stable.
SPLIT = "payment-gateway+canary"
STABLE_CLUSTER = "payment-gateway"
CANARY_CLUSTER = "pg-canary"
SPLIT_RUNTIME_PREFIX = "routing.payment-gateway"


def split_runtime_keys(stable_weight: int, canary_weight: int) -> dict[str, int]:
    """The runtime values that set the split's weights (Envoy reads <prefix>.<cluster name>)."""
    return {
        f"{SPLIT_RUNTIME_PREFIX}.{STABLE_CLUSTER}": stable_weight,
        f"{SPLIT_RUNTIME_PREFIX}.{CANARY_CLUSTER}": canary_weight,
    }


def split_clusters() -> dict[str, Any]:
    return {
        "clusters": [{"name": STABLE_CLUSTER, "weight": 100}, {"name": CANARY_CLUSTER, "weight": 0}],
        "runtime_key_prefix": SPLIT_RUNTIME_PREFIX,
    }


def _blocked_internal() -> dict[str, Any]:
    # The replicas' fault-control endpoint is for the sandbox only, never routed from outside.
    return {"match": {"prefix": "/_drill/"}, "direct_response": {"status": 404}}


def _sds(name: str, path: Path) -> dict[str, Any]:
    return {"name": name, "sds_config": _file_source(path)}


def _common_tls(layout: Layout, region: str) -> dict[str, Any]:
    sds = layout.sds_dir(region)
    return {
        "tls_certificate_sds_secret_configs": [_sds("gateway-cert", sds / "cert.json")],
        "combined_validation_context": {
            "default_validation_context": {
                "match_typed_subject_alt_names": [{"san_type": "URI", "matcher": {"prefix": SAN_PREFIX}}]
            },
            "validation_context_sds_secret_config": _sds("mesh-root", sds / "root.json"),
        },
    }


def _frontdoor_tls(layout: Layout) -> dict[str, Any]:
    root = layout.root / "sds" / "frontdoor" / "root.json"
    return {
        "name": "envoy.transport_sockets.tls",
        "typed_config": {
            "@type": T + "envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext",
            "common_tls_context": {
                "combined_validation_context": {
                    "default_validation_context": {
                        "match_typed_subject_alt_names": [{"san_type": "URI", "matcher": {"prefix": SAN_PREFIX}}]
                    },
                    "validation_context_sds_secret_config": _sds("mesh-root", root),
                }
            },
        },
    }


def _ingress_tls(layout: Layout, region: str) -> dict[str, Any]:
    return {
        "@type": T + "envoy.extensions.transport_sockets.tls.v3.DownstreamTlsContext",
        "common_tls_context": {
            "tls_certificate_sds_secret_configs": [_sds("gateway-cert", layout.sds_dir(region) / "cert.json")]
        },
    }


def _circuit_breakers() -> dict[str, Any]:
    # Istio's generated clusters open every breaker; Envoy's default 3 concurrent retries would
    # overflow at a few hundred req/s and hide failover behind `upstream_rq_retry_overflow`.
    return {
        "thresholds": [
            {
                "priority": p,
                "max_connections": MAX,
                "max_pending_requests": MAX,
                "max_requests": MAX,
                "max_retries": MAX,
            }
            for p in ("DEFAULT", "HIGH")
        ]
    }


def _runtime(static: dict[str, Any]) -> dict[str, Any]:
    return {"layers": [{"name": "static", "static_layer": static}, {"name": "admin", "admin_layer": {}}]}


def _bootstrap(
    node: str,
    admin_port: int,
    layout: Layout,
    static_runtime: dict[str, Any],
    listeners: list[dict[str, Any]],
    clusters: list[dict[str, Any]],
    locality: dict[str, str] | None = None,
) -> dict[str, Any]:
    node_cfg: dict[str, Any] = {"id": node, "cluster": node}
    if locality:
        node_cfg["locality"] = locality
    return {
        "node": node_cfg,
        "admin": {"address": _addr(admin_port)},
        "layered_runtime": _runtime(static_runtime),
        "cluster_manager": {
            "outlier_detection": {"event_log_path": str(layout.events_dir() / f"{node}-outlier.jsonl")}
        },
        "static_resources": {"listeners": listeners, "clusters": clusters},
    }


def baseline_runtime(layout: Layout, dst: str) -> dict[str, Any]:
    """Static runtime of a gateway: the topology's baseline RTT on every link into dst."""
    static: dict[str, Any] = {}
    for src in layout.regions:
        rtt = layout.rtt_ms.get(src, {}).get(dst, 0.0)
        if src != dst and rtt > 0:
            static[f"{link_key(src, dst)}.delay_percent"] = 100
            static[f"{link_key(src, dst)}.delay_ms"] = round(rtt)
    return static


# -- front door --------------------------------------------------------------------------------


def frontdoor_bootstrap(
    layout: Layout, policy: MeshPolicy, *, tls: bool = True, also_listen: str | None = None
) -> dict[str, Any]:
    """tls=False for kind with Cilium, where the front door reaches each cluster's plain-HTTP
    ingress; also_listen: one more local address for users elsewhere (kind: the kind network's
    gateway, where traffic workers in the clusters reach the host), on the same port."""
    hc = policy.front_door
    routes: list[dict[str, Any]] = [_blocked_internal()]
    clusters = []
    for client in layout.regions:
        cluster = f"mcs-{client}"
        routes.append(_route(cluster, header=("x-client-region", client), timeout_s=30))
        endpoints = []
        for prio, region in enumerate(layout.nearest[client]):
            gw = layout.gateways[region]
            endpoints.append(
                {
                    "priority": prio,
                    "locality": {"region": region},
                    "lb_endpoints": [
                        {"endpoint": {"address": _addr(gw.ingress_port), "hostname": f"gateway-{region}"}}
                    ],
                }
            )
        clusters.append(
            {
                "name": cluster,
                "type": "STATIC",
                "connect_timeout": "1s",
                "circuit_breakers": _circuit_breakers(),
                # No panic routing: with every region down, answer 503 rather than spray dead hosts.
                "common_lb_config": {"healthy_panic_threshold": {"value": 0}},
                "load_assignment": {"cluster_name": cluster, "endpoints": endpoints},
                # The load balancer reaches gateways over TLS and validates their certificates.
                **({"transport_socket": _frontdoor_tls(layout)} if tls else {}),
                # A cloud load balancer is many proxies, each with its own connections to a backend:
                # handshakes are frequent, so an expired certificate is met within moments rather
                # than hidden behind one long-lived connection.
                "typed_extension_protocol_options": {
                    "envoy.extensions.upstreams.http.v3.HttpProtocolOptions": {
                        "@type": T + "envoy.extensions.upstreams.http.v3.HttpProtocolOptions",
                        "common_http_protocol_options": {"max_requests_per_connection": 10},
                        "explicit_http_config": {"http_protocol_options": {}},
                    }
                },
                "health_checks": [
                    {
                        "timeout": _dur(hc.timeout_s),
                        "interval": _dur(hc.interval_s),
                        "reuse_connection": False,
                        # Idle clusters are otherwise probed once a minute (FACTS.md).
                        "no_traffic_interval": _dur(hc.interval_s),
                        "unhealthy_threshold": hc.unhealthy_threshold,
                        "healthy_threshold": hc.healthy_threshold,
                        "http_health_check": {
                            "path": hc.path,
                            "request_headers_to_add": [
                                {
                                    "header": {"key": "x-client-region", "value": FRONT_DOOR},
                                    "append_action": "OVERWRITE_IF_EXISTS_OR_ADD",
                                }
                            ],
                        },
                        "event_logger": [
                            {
                                "name": "envoy.health_check.event_sink.file",
                                "typed_config": {
                                    "@type": T
                                    + "envoy.extensions.health_check.event_sinks.file.v3.HealthCheckEventFileSink",
                                    "event_log_path": str(layout.events_dir() / "frontdoor-hc.jsonl"),
                                },
                            }
                        ],
                    }
                ],
            }
        )
    # A caller that does not say where it is gets the first region's view.
    routes.append(_route(f"mcs-{layout.regions[0]}", timeout_s=30))
    hcm = _hcm("frontdoor", routes, base_fault=_fault("blackout", abort=True), read_body_first=True)
    listener = _listener("mcs", layout.frontdoor_port, hcm)
    if also_listen:
        listener["additional_addresses"] = [
            {"address": {"socket_address": {"address": also_listen, "port_value": layout.frontdoor_port}}}
        ]
    return _bootstrap("frontdoor", layout.frontdoor_admin_port, layout, {}, [listener], clusters)


# -- regional gateway ----------------------------------------------------------------------------


def _retry_policy(policy: MeshPolicy) -> dict[str, Any] | None:
    r = policy.retry
    if r is None or r.attempts <= 0:
        return None
    out: dict[str, Any] = {
        "retry_on": ",".join(r.retry_on),
        "num_retries": r.attempts,
        "retry_host_predicate": [
            {
                "name": "envoy.retry_host_predicates.previous_hosts",
                "typed_config": {"@type": T + "envoy.extensions.retry.host.previous_hosts.v3.PreviousHostsPredicate"},
            }
        ],
        "host_selection_retry_max_attempts": 5,
    }
    if r.retriable_status_codes:
        out["retriable_status_codes"] = list(r.retriable_status_codes)
    if r.per_try_timeout_s:
        out["per_try_timeout"] = _dur(r.per_try_timeout_s)
    if r.remote_localities:
        out["retry_priority"] = {
            "name": "envoy.retry_priorities.previous_priorities",
            "typed_config": {
                "@type": T + "envoy.extensions.retry.priority.previous_priorities.v3.PreviousPrioritiesConfig",
                "update_frequency": 2,
            },
        }
    return out


def _health_retry() -> dict[str, Any]:
    return {
        "retry_on": "connect-failure,refused-stream,reset,5xx",
        "num_retries": 5,
        "per_try_timeout": "0.3s",
        "retry_host_predicate": [
            {
                "name": "envoy.retry_host_predicates.previous_hosts",
                "typed_config": {"@type": T + "envoy.extensions.retry.host.previous_hosts.v3.PreviousHostsPredicate"},
            }
        ],
        "host_selection_retry_max_attempts": 10,
    }


def _outlier(policy: MeshPolicy) -> dict[str, Any] | None:
    o = policy.outlier
    if o is None:
        return None
    out: dict[str, Any] = {
        "interval": _dur(o.interval_s),
        "base_ejection_time": _dur(o.base_ejection_s),
        "max_ejection_percent": o.max_ejection_pct,
        "enforcing_success_rate": 0,
        "consecutive_5xx": o.consecutive_5xx or 0,
        "enforcing_consecutive_5xx": 100 if o.consecutive_5xx else 0,
        "enforcing_consecutive_gateway_failure": 0,
    }
    if o.consecutive_gateway:
        out["consecutive_gateway_failure"] = o.consecutive_gateway
        out["enforcing_consecutive_gateway_failure"] = 100
    return out


def _eds_cluster(name: str, eds_file: Path, policy: MeshPolicy, layout: Layout, region: str) -> dict[str, Any]:
    c: dict[str, Any] = {
        "name": name,
        "type": "EDS",
        # istiod's default connect timeout
        "connect_timeout": "10s",
        "eds_cluster_config": {"eds_config": _file_source(eds_file)},
        "circuit_breakers": _circuit_breakers(),
        "transport_socket_matches": [
            {
                "name": "tlsMode-istio",
                "match": {"tlsMode": "istio"},
                "transport_socket": {
                    "name": "envoy.transport_sockets.tls",
                    "typed_config": {
                        "@type": T + "envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext",
                        "common_tls_context": _common_tls(layout, region),
                        "sni": "outbound_.80_._.payment-gateway.payments.svc.cluster.local",
                    },
                },
            },
            {
                "name": "plaintext",
                "match": {},
                "transport_socket": {
                    "name": "envoy.transport_sockets.raw_buffer",
                    "typed_config": {"@type": T + "envoy.extensions.transport_sockets.raw_buffer.v3.RawBuffer"},
                },
            },
        ],
    }
    od = _outlier(policy)
    if od is not None:
        c["outlier_detection"] = od
        # Istio sets the panic threshold to minHealthPercent (0 by default: no panic).
        c["common_lb_config"] = {
            "healthy_panic_threshold": {"value": policy.outlier.min_health_pct if policy.outlier else 0}
        }
    else:
        c["common_lb_config"] = {"healthy_panic_threshold": {"value": 0}}
    return c


def gateway_bootstrap(layout: Layout, region: str, policy: MeshPolicy, canary_split: bool = False) -> dict[str, Any]:
    """A region's gateway. canary_split: the users' routes split between the stable and canary
    clusters by the weights its control plane sets (Istio with Argo Rollouts' traffic routing)."""
    gw = layout.gateways[region]
    users = SPLIT if canary_split else STABLE_CLUSTER
    eds = layout.eds_dir(region)
    timeout = policy.route_timeout_s
    retry = _retry_policy(policy) if policy.mesh == "istio" else None
    ingress_routes: list[dict[str, Any]] = [
        _blocked_internal(),
        # The front door's health probe: the region is healthy while any of its replicas answers
        # (retries walk the local replicas), so a lost zone does not eject the whole region.
        _route(
            "pg-local",
            path="/healthz",
            fault_key=link_key(FRONT_DOOR, region),
            timeout_s=5,
            retry=_health_retry(),
        ),
    ]
    for src in layout.regions:
        ingress_routes.append(
            _route(
                users,
                header=("x-client-region", src),
                fault_key=link_key(src, region),
                timeout_s=timeout,
                retry=retry,
            )
        )
    ingress_routes.append(_route(users, timeout_s=timeout, retry=retry))
    tag = [
        {
            "header": {"key": "x-mesh-source-region", "value": region},
            "append_action": "OVERWRITE_IF_EXISTS_OR_ADD",
        }
    ]
    ingress = _hcm(f"ingress_{region}", ingress_routes, headers_to_add=tag)

    ew_routes: list[dict[str, Any]] = [_blocked_internal()]
    for src in layout.regions:
        if src != region:
            ew_routes.append(_route("pg-local", header=("x-mesh-source-region", src), fault_key=link_key(src, region)))
    ew_routes.append(_route("pg-local"))
    ew_tls = {
        "@type": T + "envoy.extensions.transport_sockets.tls.v3.DownstreamTlsContext",
        "require_client_certificate": True,
        "common_tls_context": _common_tls(layout, region),
    }
    eastwest = _hcm(f"eastwest_{region}", ew_routes)
    clusters = [
        _eds_cluster("payment-gateway", eds / "payment-gateway.json", policy, layout, region),
        _eds_cluster("pg-local", eds / "pg-local.json", policy, layout, region),
    ]
    if canary_split:
        clusters.append(_eds_cluster(CANARY_CLUSTER, eds / f"{CANARY_CLUSTER}.json", policy, layout, region))
    zone = gw.home_zone
    return _bootstrap(
        f"gateway-{region}",
        gw.admin_port,
        layout,
        baseline_runtime(layout, region),
        [
            _listener("ingress", gw.ingress_port, ingress, tls=_ingress_tls(layout, region)),
            _listener("eastwest", gw.eastwest_port, eastwest, tls=ew_tls),
        ],
        clusters,
        locality={"region": region, "zone": zone},
    )


# -- dynamic resources ---------------------------------------------------------------------------


def eds_response(cluster: str, version: int, groups: list[dict[str, Any]]) -> dict[str, Any]:
    """groups: [{priority, region, zone, endpoints: [(port or (host, port), weight, tls)]}]"""
    endpoints = []
    for g in groups:
        lb = []
        for port, weight, tls in g["endpoints"]:
            ep: dict[str, Any] = {
                "endpoint": {"address": _addr(port)},
                "load_balancing_weight": max(1, weight),
            }
            if tls:
                ep["metadata"] = {"filter_metadata": {"envoy.transport_socket_match": {"tlsMode": "istio"}}}
            lb.append(ep)
        locality = {"region": g["region"]}
        if g.get("zone"):
            locality["zone"] = g["zone"]
        endpoints.append({"priority": g["priority"], "locality": locality, "lb_endpoints": lb})
    return {
        "version_info": str(version),
        "resources": [
            {
                "@type": T + "envoy.config.endpoint.v3.ClusterLoadAssignment",
                "cluster_name": cluster,
                "endpoints": endpoints,
                "policy": {"overprovisioning_factor": 140},
            }
        ],
    }


def sds_cert(chain_pem: bytes, key_pem: bytes) -> dict[str, Any]:
    return {
        "resources": [
            {
                "@type": T + "envoy.extensions.transport_sockets.tls.v3.Secret",
                "name": "gateway-cert",
                "tls_certificate": {
                    "certificate_chain": {"inline_string": chain_pem.decode()},
                    "private_key": {"inline_string": key_pem.decode()},
                },
            }
        ]
    }


def sds_root(root_pem: bytes) -> dict[str, Any]:
    return {
        "resources": [
            {
                "@type": T + "envoy.extensions.transport_sockets.tls.v3.Secret",
                "name": "mesh-root",
                "validation_context": {"trusted_ca": {"inline_string": root_pem.decode()}},
            }
        ]
    }
