"""Every fault kind as its own typed model: its targets, its parameters, its validation and label.

A fault is pure data. `resolved()` fills defaults from the fleet's places (the users' region, its
home zone) and checks every name before anything is injected; platforms map each model type to a
handler of their own (platforms/*/faults.py). Adding a fault kind means one model here and one
handler per platform that offers it.
"""

from __future__ import annotations

from typing import Annotated, Any, ClassVar, Literal, Protocol, Self

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, TypeAdapter, model_validator

from failover_drill.errors import ConfigError, echo

FRONT_DOOR = "front-door"
Mode = Literal["kill", "freeze"]
CertVariant = Literal["leaf", "intermediate", "rotation-stopped"]


class Places(Protocol):
    """What a fault needs to know of the fleet to resolve its targets (the topology has it)."""

    @property
    def region_names(self) -> list[str]: ...

    def all_zones(self) -> list[str]: ...

    def home_zone(self, region: str) -> str: ...


class _Fault(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    # False for a fault that leaves no way to recover while it is on (a blackout; answers lost for
    # a share of requests, which no health check sees): its drill's default limits do not ask for
    # a failover time.
    _recovers: ClassVar[bool] = True

    kind: str
    # Offsets inside the fault phase; None means "until the phase ends".
    at_s: float = Field(default=0.0, ge=0)
    duration_s: float | None = Field(default=None, gt=0)

    def recovers_while_on(self) -> bool:
        return self._recovers

    def label(self) -> str:
        target = getattr(self, "target", None)
        return f"{self.kind} {target}" if target else self.kind

    def identity(self) -> tuple[str, ...]:
        """Two faults with one identity cannot be on at once (they would undo each other)."""
        return (self.kind, str(getattr(self, "target", None)), str(getattr(self, "source", None)))

    def resolved(self, places: Places, client_region: str) -> Self:
        return self

    def takes_down(self, region: str) -> bool:
        """True when the fault removes the whole region (users standing there go down with it)."""
        return False

    def served_target(self) -> str | None:
        """The region or zone whose share of served traffic must move away (for the shift figure)."""
        return None

    def mode_of(self) -> str | None:
        """kill or freeze, for the faults that have a mode."""
        mode = getattr(self, "mode", None)
        return None if mode is None else str(mode)


def _region(kind: str, target: str | None, places: Places, client_region: str) -> str:
    target = target or client_region
    if target not in places.region_names:
        raise ConfigError(
            f"unknown region {target!r} for {kind}",
            field="fault.target",
            hint=f"choose one of {', '.join(places.region_names)}",
        )
    return target


def _zone_or_region(kind: str, target: str | None, places: Places, client_region: str) -> str:
    target = target or places.home_zone(client_region)
    if target not in places.all_zones() and target not in places.region_names:
        raise ConfigError(
            f"unknown zone {target!r} for {kind}",
            field="fault.target",
            hint=f"zones are {', '.join(places.all_zones())}",
        )
    return target


class RegionLoss(_Fault):
    """Every process (or node) of a region crashes or hangs."""

    kind: Literal["region-loss"] = "region-loss"
    target: str | None = None
    mode: Mode = "kill"

    def resolved(self, places: Places, client_region: str) -> Self:
        return self.model_copy(update={"target": _region(self.kind, self.target, places, client_region)})

    def takes_down(self, region: str) -> bool:
        return self.target == region

    def served_target(self) -> str | None:
        return self.target


class ZoneLoss(_Fault):
    """A zone's replicas crash or hang; a region as target means its home zone."""

    kind: Literal["zone-loss"] = "zone-loss"
    target: str | None = None
    mode: Mode = "kill"

    def resolved(self, places: Places, client_region: str) -> Self:
        target = self.target or places.home_zone(client_region)
        if target in places.region_names:
            target = places.home_zone(target)
        return self.model_copy(update={"target": _zone_or_region(self.kind, target, places, client_region)})

    def served_target(self) -> str | None:
        return self.target


class ControlPlaneLoss(_Fault):
    """The region's mesh control plane stops: endpoints stop updating, the data plane keeps serving."""

    kind: Literal["control-plane-loss"] = "control-plane-loss"
    target: str | None = None
    mode: Mode = "kill"

    def resolved(self, places: Places, client_region: str) -> Self:
        return self.model_copy(update={"target": _region(self.kind, self.target, places, client_region)})


class _Link(_Fault):
    # The destination region, and the source: a region, the front door, or "*" for every source.
    target: str | None = None
    source: str | None = None
    default_source: ClassVar[str] = "*"

    def label(self) -> str:
        return f"{self.kind} {self.source or '*'}->{self.target}"

    def resolved(self, places: Places, client_region: str) -> Self:
        target = _region(self.kind, self.target, places, client_region)
        source = self.source or self.default_source
        allowed = [*places.region_names, "*", FRONT_DOOR]
        if source not in allowed:
            raise ConfigError(
                f"unknown source {source!r} for {self.kind}",
                field="fault.source",
                hint=f"choose one of {', '.join(allowed)}",
            )
        if source == target:
            raise ConfigError(f"{self.kind} needs two different ends, got {source!r} twice", field="fault.source")
        return self.model_copy(update={"target": target, "source": source})

    def served_target(self) -> str | None:
        return self.target


class LinkLatency(_Link):
    """Extra delay on the links into a region, optionally spread uniformly by jitter_pct."""

    kind: Literal["link-latency"] = "link-latency"
    delay_ms: float = Field(default=100.0, gt=0, le=60_000)
    jitter_pct: float = Field(default=0.0, ge=0, le=100)


class Partition(_Link):
    """The links into a region drop everything (requests and health probes time out)."""

    kind: Literal["partition"] = "partition"
    default_source: ClassVar[str] = FRONT_DOOR


class Brownout(_Fault):
    """A share of a zone's or region's requests fail with 503 or slow down: gray failure."""

    kind: Literal["brownout"] = "brownout"
    target: str | None = None
    fail_pct: float = Field(default=0.0, ge=0, le=100)
    delay_ms: float = Field(default=0.0, ge=0, le=60_000)

    @model_validator(mode="before")
    @classmethod
    def _default_share(cls, data: Any) -> Any:
        # With neither knob given, a brownout fails a fifth of the requests.
        if isinstance(data, dict) and data.get("fail_pct") is None and not data.get("delay_ms"):
            return {**data, "fail_pct": 20.0}
        return data

    @model_validator(mode="after")
    def _something(self) -> Self:
        if self.fail_pct <= 0 and self.delay_ms <= 0:
            raise ValueError("brownout needs fail_pct > 0 or delay_ms > 0")
        return self

    def recovers_while_on(self) -> bool:
        # Only a target that fails every request is ejected by outlier detection (consecutive
        # 5xx); a share of failures, spread between successes and mostly retried away, dips the
        # success ratio on and off until the revert (a default 20% brownout "never recovered").
        return self.fail_pct >= 100

    def resolved(self, places: Places, client_region: str) -> Self:
        return self.model_copy(update={"target": _zone_or_region(self.kind, self.target, places, client_region)})

    def served_target(self) -> str | None:
        return self.target


class LostResponse(_Fault):
    """Replicas charge the payment and never answer: the client's retry may charge twice."""

    # A share of requests times out and the rest succeed: no outlier detector ejects on that, so
    # the success ratio stays down until the revert. The drill judges payments, not a failover.
    _recovers: ClassVar[bool] = False
    kind: Literal["lost-response"] = "lost-response"
    target: str | None = None
    fail_pct: float = Field(default=10.0, gt=0, le=100)

    def resolved(self, places: Places, client_region: str) -> Self:
        return self.model_copy(update={"target": _zone_or_region(self.kind, self.target, places, client_region)})

    def served_target(self) -> str | None:
        return self.target


class CertExpiry(_Fault):
    """The region's gateway certificate lapses for real: peers reject it in the handshake."""

    kind: Literal["cert-expiry"] = "cert-expiry"
    target: str | None = None
    cert: CertVariant = "leaf"
    # rotation-stopped: the short life the last certificate has left.
    ttl_s: float = Field(default=3.0, gt=0, le=3600)

    def resolved(self, places: Places, client_region: str) -> Self:
        return self.model_copy(update={"target": _region(self.kind, self.target, places, client_region)})


class Blackout(_Fault):
    """Every region aborts at the front door for an exact time: the stopwatch's calibration."""

    _recovers: ClassVar[bool] = False
    kind: Literal["blackout"] = "blackout"


Fault = (
    RegionLoss | ZoneLoss | ControlPlaneLoss | LinkLatency | Partition | Brownout | LostResponse | CertExpiry | Blackout
)
KIND_MODELS: dict[str, type[_Fault]] = {
    m.model_fields["kind"].default: m
    for m in (
        RegionLoss,
        ZoneLoss,
        LinkLatency,
        Partition,
        Brownout,
        ControlPlaneLoss,
        Blackout,
        CertExpiry,
        LostResponse,
    )
}
FAULT_KINDS = tuple(KIND_MODELS)


def _known_kind(data: Any) -> Any:
    if isinstance(data, dict):
        kind = data.get("kind")
        if kind is None:
            raise ValueError(f"a fault needs a kind: one of {', '.join(FAULT_KINDS)}")
        if not isinstance(kind, str) or kind not in KIND_MODELS:
            raise ValueError(f"unknown fault {echo(kind)}; choose one of {', '.join(FAULT_KINDS)}")
    return data


FaultField = Annotated[Fault, Field(discriminator="kind"), BeforeValidator(_known_kind)]
_ADAPTER: TypeAdapter[Fault] = TypeAdapter(FaultField)


def parse_fault(data: Any) -> Fault:
    """A fault from plain data (a scenario entry, a ledger record); raises pydantic's ValidationError."""
    return _ADAPTER.validate_python(data)


def parse_recorded_fault(data: dict[str, Any]) -> Fault:
    """A fault as a ledger or journal recorded it. Records written before faults were typed carry
    every kind's parameters: only this kind's are kept."""
    model = KIND_MODELS.get(str(data.get("kind")))
    return parse_fault({k: v for k, v in data.items() if model is None or k in model.model_fields})


def fault_from_args(kind: str, **args: Any) -> Fault:
    """A fault from keyword arguments that name every parameter of every kind (the Chaos Toolkit
    action's signature): arguments left unset (None) are dropped; ValidationError otherwise."""
    return parse_fault({"kind": kind, **{k: v for k, v in args.items() if v is not None}})


def explain(err: Any) -> tuple[tuple[str | int, ...], str]:
    """A pydantic error (from ValidationError.errors()) as the user wrote the input: the location
    without the fault kind the tagged union adds or validator names, and a parameter of another
    fault kind named as such."""
    raw = tuple(err["loc"])
    loc = tuple(p for p in raw if not (isinstance(p, str) and (p in KIND_MODELS or p.startswith("function-"))))
    msg = str(err["msg"]).removeprefix("Value error, ")
    kind = next((p for p in raw if isinstance(p, str) and p in KIND_MODELS), None)
    if err.get("type") == "extra_forbidden" and kind is not None and loc:
        key = str(loc[-1])
        owners = sorted(k for k, m in KIND_MODELS.items() if key in m.model_fields)
        msg = f"{key} applies to {', '.join(owners)} only, not {kind}" if owners else f"{kind} has no parameter {key!r}"
    return loc, msg


def dump_fault(fault: Fault) -> dict[str, Any]:
    return fault.model_dump(mode="json")
