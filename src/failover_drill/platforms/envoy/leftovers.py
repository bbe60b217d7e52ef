"""What a fault leaves behind on the shared data plane (Envoy gateways and front door), found on
the live processes and repaired; used by every platform's `repair_leftovers` (issue 16, "reality
over records": the fault ledger may be torn or lost while the fault is still on)."""

from __future__ import annotations

import datetime as dt
import json
import signal
from dataclasses import dataclass, field
from typing import Any

import psutil
from cryptography import x509

from failover_drill.platforms import processes as procs
from failover_drill.platforms.envoy import admin
from failover_drill.platforms.envoy.config import sds_cert, write_atomic
from failover_drill.platforms.envoy.layout import Layout
from failover_drill.platforms.pki import MeshCA

FAULT_KEY_PREFIXES = ("fault.", "link.", "blackout.")
# The leaves of one fault filter's runtime keys (envoy/config.py _fault): judged together, since a
# delay of 3600000 ms does nothing while its percentage is 0.
_FILTER_LEAVES = ("delay_percent", "delay_ms", "abort_percent", "http_status")


@dataclass
class Repairs:
    done: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)
    restarted: set[str] = field(default_factory=set)


def thaw_marked(fleet: str, out: Repairs) -> None:
    """SIGCONT to every process carrying the fleet's mark that is stopped (a freeze fault's SIGSTOP)."""
    thawed: list[str] = []
    for p in procs.marked(fleet):
        try:
            if p.status() != psutil.STATUS_STOPPED:
                continue
            name = p.environ().get(procs.PROCESS_ENV) or p.name()
            p.send_signal(signal.SIGCONT)
            thawed.append(f"{name} (pid {p.pid})")
        except psutil.NoSuchProcess:
            continue
        except psutil.Error as exc:
            out.failed.append(f"pid {p.pid}: could not resume it: {exc}")
    if thawed:
        out.done.append(f"resumed {len(thawed)} stopped (SIGSTOP) process(es) with SIGCONT: {', '.join(thawed)}")


# -- Envoy runtime ------------------------------------------------------------------------------


def reset_runtime(name: str, admin_port: int, out: Repairs) -> None:
    """Delete one Envoy's fault-key overrides whose effect differs from its config's baseline."""
    try:
        status, text = admin.request(f"http://127.0.0.1:{admin_port}/runtime", timeout=2.0)
        if status != 200:
            raise OSError(f"/runtime answered {status}")
        found = runtime_leftovers(json.loads(text))
        if found:
            # An empty value deletes the admin-layer override: the config's static layer shows again.
            admin.runtime_modify(admin_port, {k: "" for keys, _ in found.values() for k in keys})
    except (OSError, ValueError, KeyError, TypeError) as exc:
        out.failed.append(f"{name}: could not check its runtime on admin port {admin_port}: {exc}")
        return
    if found:
        # One line per Envoy: a jittered link fault alone leaves twenty keys behind.
        what = [f"{prefix} ({change})" for prefix, (_, change) in sorted(found.items())]
        more = f" and {len(what) - 3} more" if len(what) > 3 else ""
        out.done.append(
            f"{name}: reset {len(what)} runtime override(s) to the config's baseline: {', '.join(what[:3])}{more}"
        )


def runtime_leftovers(runtime: dict[str, Any]) -> dict[str, tuple[list[str], str]]:
    """Fault-key overrides (admin layer) whose effect differs from the static layer (the baseline
    the config sets): key group -> (admin keys to delete, 'what it does -> baseline')."""
    layers: list[str] = runtime["layers"]
    entries: dict[str, dict[str, Any]] = runtime["entries"]
    if "admin" not in layers:
        return {}
    static_i = layers.index("static") if "static" in layers else None
    admin_i = layers.index("admin")
    final: dict[str, str] = {}
    static: dict[str, str] = {}
    groups: dict[str, list[str]] = {}
    for key, entry in entries.items():
        values = entry.get("layer_values") or []
        final[key] = str(entry.get("final_value", ""))
        if static_i is not None and static_i < len(values) and values[static_i] != "":
            static[key] = str(values[static_i])
        if admin_i < len(values) and values[admin_i] != "" and key.startswith(FAULT_KEY_PREFIXES):
            prefix, _, leaf = key.rpartition(".")
            groups.setdefault(prefix if leaf in _FILTER_LEAVES else key, []).append(key)
    found: dict[str, tuple[list[str], str]] = {}
    for group, keys in groups.items():
        now, base = _effect(final, group, keys), _effect(static, group, keys)
        if now != base:
            found[group] = (keys, f"{_describe(now)} -> {_describe(base)}")
    return found


def _effect(values: dict[str, str], group: str, keys: list[str]) -> tuple[Any, ...]:
    """What a group of runtime keys does: for a fault filter, (delay %, delay ms while on, abort %,
    status while on); for any other key, its value."""
    if keys == [group]:
        return (group, values.get(group))

    def num(leaf: str) -> float | str:
        raw = values.get(f"{group}.{leaf}", "") or "0"
        try:
            return float(raw)
        except ValueError:
            return raw

    delay, abort = num("delay_percent"), num("abort_percent")
    return (delay, num("delay_ms") if delay else None, abort, num("http_status") if abort else None)


def _describe(effect: tuple[Any, ...]) -> str:
    if len(effect) == 2:
        return "unset" if effect[1] is None else str(effect[1])
    delay, delay_ms, abort, status = effect
    parts = []
    if delay:
        parts.append(f"delay {delay:g}% {delay_ms:,.0f} ms" if isinstance(delay_ms, float) else f"delay {delay}%")
    if abort:
        parts.append(f"abort {abort:g}% ({status:g})" if isinstance(status, float) else f"abort {abort}%")
    return ", ".join(parts) or "off"


# -- replica fault switches ---------------------------------------------------------------------


def clear_switches(name: str, base_url: str, out: Repairs) -> None:
    """A replica's gray-failure switches (brownout, lost response): anything but all-zero is cleared."""
    url = f"{base_url}/_drill/faults"
    try:
        status, text = admin.request(url, timeout=2.0)
        if status != 200:
            raise OSError(f"GET /_drill/faults answered {status}")
        on = {k: v for k, v in json.loads(text).items() if v}
        if on:
            admin.request(url, method="POST", body={}, timeout=2.0)
    except (OSError, ValueError, AttributeError) as exc:
        out.failed.append(f"{name}: could not check its fault switches at {base_url}: {exc}")
        return
    if on:
        out.done.append(f"{name}: cleared fault switches {', '.join(f'{k}={v:g}' for k, v in sorted(on.items()))}")


# -- certificates -------------------------------------------------------------------------------


def repair_certificates(layout: Layout, out: Repairs) -> None:
    """A stopped rotation agent, an expired intermediate, or a gateway leaf that is expired, not yet
    valid or past its renewal point: re-issued, as the rotation agent would."""
    ca = MeshCA(layout.pki_dir())
    now = dt.datetime.now(dt.UTC)
    for region in layout.regions:
        cert_file = layout.sds_dir(region) / "cert.json"
        try:
            why = _cert_problems(ca, region, cert_file.read_text(), now)
            if not why:
                continue
            renew_intermediate = ca.intermediate_not_after(region) <= now
            if renew_intermediate:
                ca.issue_intermediate(region)
            leaf = ca.issue_leaf(region)
            write_atomic(cert_file, sds_cert(leaf.cert_pem, leaf.key_pem))
            ca.rotation_flag(region).unlink(missing_ok=True)
        except (OSError, ValueError, KeyError, IndexError, TypeError) as exc:
            out.failed.append(f"gateway-{region}: could not check its certificate {cert_file}: {exc}")
            continue
        again = "intermediate and leaf" if renew_intermediate else "leaf"
        out.done.append(f"gateway-{region}: re-issued its {again} certificate ({'; '.join(why)})")


def _cert_problems(ca: MeshCA, region: str, sds_json: str, now: dt.datetime) -> list[str]:
    why: list[str] = []
    if ca.rotation_flag(region).exists():
        why.append("its rotation agent was stopped")
    chain_pem = json.loads(sds_json)["resources"][0]["tls_certificate"]["certificate_chain"]["inline_string"]
    chain = x509.load_pem_x509_certificates(chain_pem.encode())
    leaf = chain[0]
    nb, na = leaf.not_valid_before_utc, leaf.not_valid_after_utc
    if na <= now:
        why.append(f"the leaf expired at {na:%H:%M:%S} UTC")
    elif nb > now:
        why.append(f"the leaf is not valid before {nb:%H:%M:%S} UTC")
    elif now >= nb + (na - nb) / 2:
        # The rotation agent renews at half-life (control_plane.rotate): past it means not renewed.
        why.append("the leaf is past its renewal point")
    if ca.intermediate_not_after(region) <= now:
        why.append("the region's intermediate CA expired")
    for cert in chain[1:]:
        if cert.not_valid_after_utc <= now:
            why.append(f"its issuer {cert.subject.rfc4514_string()} expired")
    return why
