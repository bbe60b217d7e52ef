"""Kill soak (issue 16): drills SIGKILLed at random moments, their watchdogs too or instead, some
with the fault ledger torn; after `failover-drill recover` nothing a fault leaves is left (no
stopped or dead process, no Envoy runtime override, no replica fault switch, no lapsed
certificate), no drill or watchdog process is running, and a second `recover` has nothing to do.

Twenty real drills take a few minutes, so this is the `make soak` target (marker `soak`), not part
of `make test`; its figures are in the README. SOAK_RUNS and SOAK_SEED change the count and seed.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import random
import signal
import subprocess
import sys
import time
from collections.abc import Iterable
from pathlib import Path

import pytest
from cryptography import x509

from failover_drill.faults.ledger import FaultLedger
from failover_drill.platforms.envoy import admin
from failover_drill.platforms.envoy.leftovers import runtime_leftovers
from failover_drill.recovery import ledger_path
from tests.conftest import FAST, ROOT, Fleet, processes_under, run_cli

pytestmark = [pytest.mark.soak, pytest.mark.timeout(1800)]

FAULTS = [
    ["--fault", "zone-loss", "--mode", "freeze"],
    ["--fault", "zone-loss", "--mode", "kill"],
    ["--fault", "region-loss", "--target", "eu-west1", "--mode", "freeze"],
    ["--fault", "link-latency", "--set", "faults.0.jitter_pct=30"],
    ["--fault", "partition"],
    ["--fault", "blackout"],
    ["--fault", "brownout"],
    ["--fault", "lost-response"],
    ["--fault", "cert-expiry", "--target", "asia-southeast1", "--set", "faults.0.cert=intermediate"],
    ["--fault", "cert-expiry", "--target", "eu-west1"],
    ["--fault", "cert-expiry", "--set", "faults.0.cert=rotation-stopped", "--set", "faults.0.ttl_s=5"],
    ["--fault", "control-plane-loss", "--mode", "freeze"],
]


def _drill_processes(state: Path) -> list[int]:
    return [
        int(p.split(":")[0])
        for p in processes_under(state)
        if "failover_drill.watchdog" in p or "failover_drill.cli drill" in p
    ]


def _leftovers(fleet: Fleet) -> list[str]:
    """What a healthy fleet does not have: not-running processes, runtime overrides, switches."""
    out = [f"{c['name']} {c['state']}" for c in fleet.platform.status().components if c["state"] != "running"]
    layout = fleet.platform.layout()
    for name, port in [
        ("frontdoor", layout.frontdoor_admin_port),
        *((f"gw-{r}", g.admin_port) for r, g in layout.gateways.items()),
    ]:
        runtime = json.loads(admin.request(f"http://127.0.0.1:{port}/runtime")[1])
        out += [f"{name}: {k}" for k in runtime_leftovers(runtime)]
    for rep in layout.replicas:
        body = json.loads(admin.request(f"http://127.0.0.1:{rep.port}/_drill/faults")[1] or "{}")
        if any(v for v in body.values()):
            out.append(f"{rep.name}: switch {body}")
    out += _lapsing_certificates(layout.sds_dir(r) / "cert.json" for r in layout.regions)
    return out


def _lapsing_certificates(files: Iterable[Path]) -> list[str]:
    """Every certificate the gateways serve (leaf and chain, as Envoy reads them from SDS) valid
    for at least ten more minutes: an expired one, or a short-lived leaf whose rotation agent
    stays stopped, is a fault left behind. Read here with cryptography, not with the repair code."""
    soon = dt.datetime.now(dt.UTC) + dt.timedelta(minutes=10)
    out = []
    for f in files:
        sds = json.loads(f.read_text())
        chain = sds["resources"][0]["tls_certificate"]["certificate_chain"]["inline_string"]
        for cert in x509.load_pem_x509_certificates(chain.encode()):
            if cert.not_valid_after_utc <= soon:
                out.append(f"{f}: {cert.subject.rfc4514_string()} valid only until {cert.not_valid_after_utc}")
    return out


def test_kill_soak(fleet: Fleet, tmp_path: Path) -> None:
    runs = int(os.environ.get("SOAK_RUNS", "20"))
    rng = random.Random(int(os.environ.get("SOAK_SEED", "16")))
    figures: dict[str, int] = {"drill": 0, "watchdog": 0, "both": 0, "torn": 0, "repaired": 0}
    for i in range(runs):
        fleet.platform.wait_steady("us-east1", timeout_s=60)
        fault = rng.choice(FAULTS)
        cmd = [sys.executable, "-m", "failover_drill.cli", "drill", "--runs-dir", str(tmp_path / "runs"), *FAST]
        cmd += [*fault, "--set", "phases.fault_s=20"]
        env = {**os.environ, "FAILOVER_DRILL_STATE": str(fleet.state)}
        drill = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        # A random moment: before, during or just after the inject.
        ledger = ledger_path(fleet.state)
        deadline = time.monotonic() + 60
        while not any(e.state in ("injecting", "active") for e in FaultLedger(ledger).open_entries()):
            assert drill.poll() is None and time.monotonic() < deadline, drill.communicate()
            time.sleep(0.05)
        time.sleep(rng.uniform(0.0, 2.0))
        victim = rng.choice(["drill", "watchdog", "both"])
        figures[victim] += 1
        if victim in ("watchdog", "both"):
            for line in processes_under(fleet.state):
                if "failover_drill.watchdog" in line:
                    os.kill(int(line.split(":")[0]), signal.SIGKILL)
        if victim in ("drill", "both"):
            drill.kill()
        if victim == "watchdog":
            # The drill lives on without its watchdog; it is killed a moment later all the same.
            time.sleep(rng.uniform(0.0, 1.0))
            drill.kill()
        drill.communicate()
        if rng.random() < 0.4:
            ledger.write_text('[{"id": "torn", "platform": "sandb')
            figures["torn"] += 1
        time.sleep(0.5)  # a surviving watchdog may be reverting right now
        out = run_cli("recover", state=fleet.state)
        assert out.returncode == 0, (i, fault, victim, out.stdout, out.stderr)
        figures["repaired"] += out.stdout.count("repaired:")
        deadline = time.monotonic() + 15
        while _leftovers(fleet) and time.monotonic() < deadline:
            time.sleep(0.2)  # a restarted region needs a moment to answer
        assert _leftovers(fleet) == [], (i, fault, victim, out.stdout)
        assert _drill_processes(fleet.state) == [], (i, fault, victim)
        again = run_cli("recover", state=fleet.state)
        assert again.returncode == 0 and "nothing to recover" in again.stdout, (i, fault, again.stdout, again.stderr)
    print(f"kill soak: {runs} runs {figures}")
