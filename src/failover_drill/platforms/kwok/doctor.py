"""What the kwok platform needs from the host (`failover-drill doctor --platform kwok`): root and
iproute2 for the pods' network namespace, the pinned Kubernetes binaries (or go to build them on
first use, tens of minutes), and Envoy."""

from __future__ import annotations

import shutil

from failover_drill import toolchain
from failover_drill.platforms.doctor import Check, envoy_check, fail, ok
from failover_drill.platforms.kwok import userns
from failover_drill.platforms.kwok.control_plane import COMPONENTS
from failover_drill.platforms.kwok.netns import can_create
from failover_drill.platforms.kwok.platform import ROLLOUTS


def _pod_network() -> Check:
    if not userns.needed():
        why = can_create()
        return fail("pod network", why, "install iproute2") if why else ok("pod network", "root and iproute2")
    why = userns.unavailable()
    if why:
        return fail(
            "pod network",
            f"not root, and {why}",
            "run as root, or allow unprivileged user namespaces (sysctl kernel.unprivileged_userns_clone=1; on "
            "Ubuntu 24.04+ kernel.apparmor_restrict_unprivileged_userns=0), or use the sandbox",
        )
    return ok(
        "pod network", "not root: in a user namespace of the fleet's own (`failover-drill enter` for other tools)"
    )


def kwok_checks() -> list[Check]:
    checks = [_pod_network()]
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
