"""Run inside a payment-gateway pod by an exec through the API server (Kube.exec, what `kubectl
exec` does; the image ships this package):
dump the pod's ledger as JSON lines, or switch the replica's gray-failure faults.

    python -m failover_drill.platforms.kind.pod_tools dump-ledger /var/lib/ledger/payments.sqlite
    python -m failover_drill.platforms.kind.pod_tools set-faults 8080 '{"fail_pct": 10}'
    python -m failover_drill.platforms.kind.pod_tools get-faults 8080
"""

from __future__ import annotations

import json
import sys
import urllib.request
from dataclasses import asdict
from pathlib import Path

from failover_drill.platforms.service import ledger_db


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) == 2 and args[0] == "dump-ledger":
        for charge in ledger_db.read_all(Path(args[1])):
            print(json.dumps(asdict(charge)))
        return 0
    if len(args) == 3 and args[0] == "set-faults":
        body = json.dumps(json.loads(args[2])).encode()
        req = urllib.request.Request(
            f"http://127.0.0.1:{int(args[1])}/_drill/faults",
            data=body,
            method="POST",
            headers={"content-type": "application/json"},
        )
        with urllib.request.urlopen(req, timeout=2.0) as resp:
            print(resp.read().decode())
        return 0
    if len(args) == 2 and args[0] == "get-faults":
        with urllib.request.urlopen(f"http://127.0.0.1:{int(args[1])}/_drill/faults", timeout=2.0) as resp:
            print(resp.read().decode())
        return 0
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
