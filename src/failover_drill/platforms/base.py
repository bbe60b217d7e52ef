"""What every platform offers the drill: bring the fleet up, inject and revert faults, tell what
it saw, and hand over the payment ledgers for reconciliation."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from failover_drill.faults.model import Fault
from failover_drill.remote_workers import RemoteWorkers

if TYPE_CHECKING:  # the kubernetes client loads in a sandbox drill only if it asks for a Kube
    from failover_drill.platforms.kube.client import Kube

Progress = Callable[[str], None]


@dataclass(frozen=True)
class PlatformEvent:
    """Something the mesh or load balancer itself saw (an ejection, a health flip, an endpoint push)."""

    wall: float
    source: str
    kind: str
    region: str | None = None
    zone: str | None = None
    detail: str = ""


@dataclass(frozen=True)
class LedgerCharge:
    key: str
    region: str
    zone: str
    replica: str
    payment_id: str
    amount_cents: int


@dataclass
class FleetStatus:
    up: bool
    platform: str
    mesh: str | None = None
    entrypoint: str | None = None
    components: list[dict[str, Any]] = field(default_factory=list)
    faults_active: int = 0
    # Links between regions where the platform shapes them itself, one entry per direction: from,
    # to, delay_ms, jitter_ms and loss_pct (what that direction carries now), on (where it is
    # applied), rtt_ms (the pair's), baseline_ms (what the layout gives it without a fault), fault
    # (the ledger entry whose netem is on it, or None) and also_open (open entries whose netem on it
    # a later change replaced). A direction to the front door is listed while a fault is on it.
    links: list[dict[str, Any]] = field(default_factory=list)
    # The faults in force as the fault ledger holds them (entries not reverted), where the platform
    # reports them: id, label, kind, state (injecting | active), since_wall, owner_pid,
    # lease_expires_wall, error. None: not reported. ledger_error: the ledger could not be read.
    faults: list[dict[str, Any]] | None = None
    ledger_error: str | None = None

    @property
    def healthy(self) -> bool:
        return self.up and all(c.get("state") == "running" for c in self.components)


class Platform(Protocol):
    name: str

    def up(self, progress: Progress | None = None, owner_pid: int | None = None) -> None:
        """owner_pid: the drill that brought the fleet up (`recover` stops it if that drill died)."""
        ...

    def down(self, progress: Progress | None = None) -> None: ...

    def is_up(self) -> bool: ...

    def wait_steady(self, region: str, timeout_s: float = 30.0) -> None:
        """Return once the users' region is served at home; raise PlatformError if it never is."""
        ...

    def status(self) -> FleetStatus: ...

    def entrypoint(self) -> str:
        """URL of the multi-cluster service's front door."""
        ...

    def mesh(self) -> str: ...

    def plan_fault(self, fault: Fault) -> dict[str, Any]:
        """What inject will do and revert will need, computed before anything changes; it goes into
        the fault ledger, so a crash mid-inject is still revertible. FaultError if the platform
        does not offer this fault."""
        ...

    def inject(self, fault: Fault, plan: dict[str, Any]) -> dict[str, Any]:
        """Inject as planned; returns details for the journal."""
        ...

    def revert(self, fault: Fault, plan: dict[str, Any]) -> None:
        """Idempotent; a target that is gone already is not an error."""
        ...

    def events(self, since_wall: float) -> list[PlatformEvent]: ...

    def ledger(self) -> list[LedgerCharge]: ...

    def locations(self) -> dict[str, list[str]]:
        """region -> zones, for labelling where requests were served."""
        ...

    def plan_lines(self, faults: list[Fault]) -> list[str]:
        """What up, each fault's inject and revert, and down would do, beyond the drill's own plan
        (kind: every command); nothing is touched."""
        ...

    def recover_orphans(self, alive: Callable[[int], bool]) -> list[str]:
        """Stop what a drill that died left running (its fleet, its traffic workers); says what."""
        ...

    def repair_leftovers(self) -> list[str]:
        """Check the live fleet for what a fault leaves behind (stopped processes, runtime overrides,
        lapsed certificates) and repair it whatever the fault ledger says; what was repaired."""
        ...

    def capacity_warning(self, rate_per_worker: float) -> str | None:
        """A warning when the rate is near what this machine can serve cleanly on this platform."""
        ...

    def check_in_region_traffic(self) -> None:
        """ConfigError where this platform cannot run traffic inside a region: asked before any
        fleet comes up."""
        ...

    def traffic_workers(
        self, *, region: str, spec_json: str, duration_s: float, workers: int, key_prefix: str
    ) -> RemoteWorkers:
        """Traffic workers inside the users' region (traffic.origin: in-region); ConfigError where
        the platform has none (check_in_region_traffic)."""
        ...

    def analysis_host(self) -> str:
        """An address of this machine that the fleet's Argo Rollouts controllers reach: where a
        drill's SLI endpoint and Prometheus listen for a release's analysis. PlatformError when
        there is none to be found (the user names one with --sli-host)."""
        ...

    def region_kubes(self) -> dict[str, Kube]:
        """region -> the Kubernetes API of its cluster, for Argo Rollouts (rollouts.py). ConfigError
        where the platform has no Kubernetes API, PlatformError when its fleet is down."""
        ...
