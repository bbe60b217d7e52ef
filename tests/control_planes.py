"""What the tests against one real kwok control plane share: the skip without go, the wait, and
the module's control plane started and always stopped."""

from __future__ import annotations

import shutil
import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from failover_drill import toolchain
from failover_drill.platforms.kwok import COMPONENTS, ControlPlane, ControlPlaneSpec, Ports

REGION = "us-east1"

NEEDS_GO = [
    pytest.mark.skipif(
        shutil.which("go") is None,
        reason="the go command is not on PATH: the control plane's components are built from source",
    ),
    # The first use may build the components (a cold build takes tens of minutes); every wait in
    # the control plane has its own deadline.
    pytest.mark.timeout(3600),
]


def until(what: str, check: Any, timeout_s: float = 60.0) -> Any:
    """check()'s first truthy answer, polled every 0.25 s; AssertionError with the last one after timeout_s."""
    deadline = time.monotonic() + timeout_s
    last: Any = None
    while time.monotonic() < deadline:
        last = check()
        if last:
            return last
        time.sleep(0.25)
    raise AssertionError(f"{what}: not within {timeout_s} s (last: {last!r})")


def started_plane(tmp_path_factory: pytest.TempPathFactory, name: str, **spec: Any) -> Iterator[ControlPlane]:
    """A module fixture's body: us-east1's control plane with `spec`, stopped when the module ends.
    Builds what is missing: a failed build fails the tests, it does not skip them."""
    binaries = toolchain.paths(COMPONENTS)
    cp = ControlPlane(
        ControlPlaneSpec(
            region=REGION,
            state_dir=tmp_path_factory.mktemp(name),
            ports=Ports.free(),
            fleet_id=f"test-{uuid.uuid4().hex[:8]}",
            **spec,
        ),
        binaries,
    )
    cp.start()
    try:
        yield cp
    finally:
        cp.stop()
