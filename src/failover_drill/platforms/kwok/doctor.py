"""What the kwok platform needs from the host (`failover-drill doctor --platform kwok`): root and
iproute2 for the pods' network namespace, the pinned Kubernetes binaries (or go to build them on
first use, tens of minutes), and Envoy."""

from __future__ import annotations

import shutil

from failover_drill import toolchain
from failover_drill.platforms.doctor import Check, envoy_check, fail, ok
from failover_drill.platforms.kwok.control_plane import COMPONENTS
from failover_drill.platforms.kwok.netns import can_create
from failover_drill.platforms.kwok.platform import ROLLOUTS


def kwok_checks() -> list[Check]:
    why = can_create()
    checks = [
        fail("pod network", why, "run as root, or use the sandbox") if why else ok("pod network", "root and iproute2")
    ]
    pins = toolchain.load_pins()
    missing = [n for n in (*COMPONENTS, ROLLOUTS) if not toolchain.up_to_date(pins.component(n))]
    if not missing:
        checks.append(ok("kubernetes binaries", "built at the pinned versions"))
    elif shutil.which("go"):
        checks.append(ok("kubernetes binaries", f"go builds {', '.join(missing)} on first use (tens of minutes)"))
    else:
        checks.append(
            fail(
                "kubernetes binaries",
                f"{', '.join(missing)} not built, and go is not on PATH",
                "install Go 1.26 (https://go.dev/dl/), put it on PATH, then `make k8s-bin`",
            )
        )
    checks.append(envoy_check())
    return checks
