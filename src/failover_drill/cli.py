"""The command line: parses, delegates to the core, maps errors to exit codes (README)."""

from __future__ import annotations

import contextlib
import json
import os
import sys
import time
from pathlib import Path
from typing import Annotated, Any, cast

import click
import typer
from rich.console import Console
from rich.live import Live
from rich.table import Table

from failover_drill import obs
from failover_drill import rollouts as rollout_ops
from failover_drill.adapters.chaostoolkit.experiment_set import drill_experiment
from failover_drill.config.scenario import RELEASES, Scenario, build_scenario, load_scenario
from failover_drill.config.topology import Topology, load_topology
from failover_drill.drill import Drill, LiveView, resolve_faults
from failover_drill.errors import EXIT_BAD_INPUT, EXIT_INTERRUPTED, EXIT_PLATFORM, ConfigError, DrillError
from failover_drill.faults.model import Fault
from failover_drill.gameday.model import GameDayDrill, GameDayFile, load_gameday, slug
from failover_drill.gameday.room import AutoRoom, TerminalRoom
from failover_drill.gameday.runner import GameDayRunner, day_topology, plan_day
from failover_drill.measure.live_sli import LiveSli, bound_server
from failover_drill.ownership import FleetOwnership
from failover_drill.platforms.base import FleetStatus
from failover_drill.platforms.doctor import render as render_checks
from failover_drill.platforms.kwok import userns
from failover_drill.platforms.registry import PLATFORMS, check_platform, host_checks, open_platform, platform_dir
from failover_drill.predict import scenario as predictions
from failover_drill.recovery import recover as run_recover
from failover_drill.report.history import History
from failover_drill.report.markdown import check_rows, scorecard_rows, verdict_word
from failover_drill.report.rundir import write_reports

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    # click itself suggests the nearest command; typer's suggestion would say it a second time.
    suggest_commands=False,
    help="Rehearse multi-region failover and measure what users felt.",
)
out = Console()
err = Console(stderr=True)

StateOpt = Annotated[
    Path,
    typer.Option("--state-dir", envvar="FAILOVER_DRILL_STATE", help="where fleet state and the fault ledger live"),
]
TopoOpt = Annotated[
    Path | None, typer.Option("--topology", "-t", help="topology YAML (default clusters/topology.yaml)")
]
MeshOpt = Annotated[str | None, typer.Option("--mesh", help="istio | istio-tuned | cilium | cilium-tuned")]
# Only the platforms that exist (platforms/registry.py), as a choice: click lists them in --help
# and refuses any other name with its usage message.
PlatformOpt = Annotated[
    str, typer.Option("--platform", click_type=click.Choice(PLATFORMS), help="where the fleet runs")
]
DEFAULT_STATE = Path(".failover-drill")


@app.callback()
def _global_options(
    log_format: Annotated[
        str,
        typer.Option(
            "--log-format",
            click_type=click.Choice(obs.LOG_FORMATS),
            envvar="FAILOVER_DRILL_LOG_FORMAT",
            help="logs on stderr: JSON lines (json), key=value (console), or json unless stderr is a terminal (auto)",
        ),
    ] = "auto",
) -> None:
    obs.configure(os.environ.get("FAILOVER_DRILL_LOG", "warning"), fmt=cast("obs.LogFormat", log_format))


def _say(msg: str) -> None:
    err.print(f"· {msg}", markup=False, highlight=False, soft_wrap=True)


def _plain(text: str) -> None:
    """A line on stdout as it is: no markup (messages hold [brackets]), no colour, never cut."""
    out.print(text, markup=False, highlight=False, soft_wrap=True)


def _platform_check(platform: str) -> None:
    check_platform(platform)


@app.command()
def up(
    state_dir: StateOpt = DEFAULT_STATE,
    topology: TopoOpt = None,
    mesh: MeshOpt = None,
    platform: PlatformOpt = "sandbox",
) -> None:
    """Bring the fleet up (sandbox: real Envoy + payment-gateway processes on 127.0.0.1; kind: clusters)."""
    _platform_check(platform)
    topo = load_topology(topology, mesh=mesh)
    FleetOwnership(state_dir).refuse_if_owned("bring it up")
    open_platform(platform, state_dir, topo).up(progress=_say)


@app.command()
def doctor(topology: TopoOpt = None, mesh: MeshOpt = None, platform: PlatformOpt = "sandbox") -> None:
    """Check this host for a platform in seconds (Docker, tools, kernel limits and qdiscs, memory, Envoy), each with its fix."""
    _platform_check(platform)
    checks = host_checks(platform, load_topology(topology, mesh=mesh))
    for line in render_checks(checks):
        _plain(line)
    failed = [c for c in checks if c.failed]
    if failed:
        _say(f"{len(failed)} of {len(checks)} checks failed: `up --platform {platform}` would refuse to start")
        raise typer.Exit(EXIT_PLATFORM)


@app.command()
def down(state_dir: StateOpt = DEFAULT_STATE, platform: PlatformOpt = "sandbox") -> None:
    """Revert open faults, then stop every process of the fleet (kind: delete the clusters)."""
    _platform_check(platform)
    FleetOwnership(state_dir).refuse_if_owned("take it down")
    run_recover(state_dir, stop_orphans=False)
    open_platform(platform, state_dir).down(progress=_say)


@app.command()
def status(
    state_dir: StateOpt = DEFAULT_STATE,
    as_json: Annotated[bool, typer.Option("--json", help="machine-readable")] = False,
    platform: PlatformOpt = "sandbox",
) -> None:
    """Show the fleet: every process (or node), its state, app port and Envoy admin port."""
    _platform_check(platform)
    st = open_platform(platform, state_dir).status()
    if as_json:
        out.print_json(
            json.dumps(
                {
                    "up": st.up,
                    "mesh": st.mesh,
                    "entrypoint": st.entrypoint,
                    "components": st.components,
                    **({"links": st.links} if st.links else {}),
                    **({"faults": st.faults} if st.faults is not None else {}),
                    **({"ledger_error": st.ledger_error} if st.ledger_error else {}),
                }
            )
        )
        return
    if not st.up:
        out.print(f"{platform} fleet is down")
        return
    t = Table(title=f"{platform} — mesh {st.mesh} — front door {st.entrypoint}")
    keys = ("name", "kind", "region", "zone", "pid", "port", "admin_port", "state")
    for col in ("name", "kind", "region", "zone", "pid", "app port", "admin port", "state"):
        t.add_column(col)
    for c in st.components:
        t.add_row(*(str(c.get(k) or "") for k in keys))
    out.print(t)
    if st.faults is not None or st.ledger_error:
        _plain(_faults_line(st))
        for f in st.faults or []:
            _plain(f"  {_fault_line(f)}")
    if st.links:
        # Each direction of a link and what it carries: a request and its reply add up to the RTT.
        out.print("links between regions (netem, per direction):", markup=False, highlight=False)
        for d in st.links:
            _plain(f"  {_link_line(d)}")
    metrics = [(c["name"], c["metrics"]) for c in st.components if c.get("metrics")]
    if metrics:
        out.print("Envoy Prometheus stats:", markup=False, highlight=False)
        for name, url in metrics:
            _plain(f"  {name}: {url}")


def _clock(wall: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(wall))


def _faults_line(st: FleetStatus) -> str:
    if st.ledger_error:
        return f"faults in force: unknown: {st.ledger_error}"
    return "faults in force (fault ledger):" if st.faults else "faults in force: none (fault ledger)"


def _fault_line(f: dict[str, Any]) -> str:
    """One open ledger entry: what, since when, whose, until when its lease lets it stay."""
    state = "injecting (may be partly applied)" if f["state"] == "injecting" else f["state"]
    line = (
        f"{f['label']}: {state} since {_clock(f['since_wall'])} (entry {f['id']}, drill pid {f['owner_pid']}, "
        f"lease until {_clock(f['lease_expires_wall'])})"
    )
    return line + (f"; last error: {f['error']}" if f.get("error") else "")


def _link_line(d: dict[str, Any]) -> str:
    """What one direction of a link carries now, and the fault that put it there."""
    if d.get("loss_pct"):
        carries = f"{d['loss_pct']:g}% loss"
    else:
        carries = f"{d['delay_ms']:g} ms" + (f" +- {d['jitter_ms']:g} ms" if d.get("jitter_ms") else "")
    line = f"{d['from']} -> {d['to']}: {carries} (on {d['on']})"
    if d.get("rtt_ms") is not None:
        line += f"; round trip {d['rtt_ms']:g} ms"
    fault = d.get("fault")
    if fault:
        line += f"; FAULT {fault['label']} ({fault['state']}, entry {fault['id']}), baseline {d['baseline_ms']:g} ms"
    if d.get("also_open"):
        line += f"; open in the ledger but no longer on this band: {', '.join(d['also_open'])}"
    return line


def _parse_sets(values: list[str]) -> dict[str, Any]:
    overrides: dict[str, Any] = {}
    for item in values:
        key, sep, raw = item.partition("=")
        if not sep or not key:
            raise ConfigError(f"--set {item!r} is not key=value", field="--set", hint="e.g. --set phases.fault_s=30")
        try:
            overrides[key] = json.loads(raw)
        except ValueError:
            overrides[key] = raw
    return overrides


# The options that define a drill, shared by `drill` and `plan` so that whatever a drill accepts,
# its plan accepts too.
RegionOpt = Annotated[str | None, typer.Option("--region", "-r", help="where the users are")]
FaultOpt = Annotated[str | None, typer.Option("--fault", "-f", help="region-loss, zone-loss, link-latency, ...")]
ModeOpt = Annotated[str | None, typer.Option("--mode", help="kill (crash) or freeze (hang)")]
TargetOpt = Annotated[str | None, typer.Option("--target", help="region or zone to hit (default: the users' region)")]
RateOpt = Annotated[float | None, typer.Option("--rate", help="requests per second, open loop")]
SourceOpt = Annotated[str | None, typer.Option("--source", help="link faults: from this region or front-door")]
DelayOpt = Annotated[float | None, typer.Option("--delay-ms", help="link-latency / brownout: added delay")]
JitterOpt = Annotated[
    float | None, typer.Option("--jitter-pct", help="link-latency: spread of the delay, +- this percent")
]
FailPctOpt = Annotated[
    float | None, typer.Option("--fail-pct", help="brownout / lost-response: percent of requests that fail")
]
ScenarioOpt = Annotated[Path | None, typer.Option("--scenario", "-s", help="scenario YAML")]
SetsOpt = Annotated[list[str] | None, typer.Option("--set", help="override a scenario field: phases.fault_s=30")]


def _build(
    *,
    region: str | None,
    fault: str | None,
    mode: str | None,
    target: str | None,
    rate: float | None,
    source: str | None,
    delay_ms: float | None,
    jitter_pct: float | None,
    fail_pct: float | None,
    scenario: Path | None,
    sets: list[str] | None,
    mesh: str | None,
    topology: Path | None,
    rollout: str | None = None,
) -> tuple[Scenario, Topology, list[Fault]]:
    """The scenario, topology and resolved faults the drill options describe (drill and plan alike)."""
    base = load_scenario(scenario)[0] if scenario else None
    sc = build_scenario(
        base,
        region=region,
        fault=fault,
        mode=mode,
        target=target,
        rate=rate,
        overrides=_parse_sets(sets or []),
        fault_params={"source": source, "delay_ms": delay_ms, "jitter_pct": jitter_pct, "fail_pct": fail_pct},
        rollout=rollout,
    )
    topo = load_topology(topology, mesh=mesh)
    return sc, topo, resolve_faults(sc, topo)


def _fault_phase_for(
    sc: Scenario, topo: Topology, platform: str, faults: list[Fault], scenario: Path | None, sets: list[str] | None
) -> Scenario:
    """sc with a fault phase that outlasts each fault's predicted failover (a kwok zone loss waits
    out the 50 s node-monitor grace period, v1.36's default; the default phase is 25 s), where the user did
    not choose the phase: no scenario file, no --set phases.fault_s. A prediction that cannot be
    made leaves it as it is (the drill says why)."""
    if scenario is not None or any(item.split("=", 1)[0].strip() == "phases.fault_s" for item in sets or []):
        return sc
    try:
        longer, said = predictions.sized_fault_phase(sc, faults, predictions.context(sc, topo, platform))
    except (DrillError, KeyError, ValueError):
        return sc
    if said:
        _say(said)
    return longer


RolloutScenarioOpt = Annotated[
    str | None,
    typer.Option(
        "--rollout",
        click_type=click.Choice(list(RELEASES)),
        help="roll out a new payment-gateway version through Argo Rollouts at the fault phase's start "
        "(kwok, kind): bad-canary fails 60% of its payments, good-canary is promoted once analysis passes; "
        "without --fault the release is all the drill does",
    ),
]


@app.command()
def drill(
    region: RegionOpt = None,
    fault: FaultOpt = None,
    mode: ModeOpt = None,
    target: TargetOpt = None,
    rate: RateOpt = None,
    source: SourceOpt = None,
    delay_ms: DelayOpt = None,
    jitter_pct: JitterOpt = None,
    fail_pct: FailPctOpt = None,
    scenario: ScenarioOpt = None,
    sets: SetsOpt = None,
    mesh: MeshOpt = None,
    platform: PlatformOpt = "sandbox",
    topology: TopoOpt = None,
    state_dir: StateOpt = DEFAULT_STATE,
    runs_dir: Annotated[Path, typer.Option("--runs-dir", help="where runs/<id>/ go")] = Path("runs"),
    keep_up: Annotated[bool, typer.Option("--keep-up", help="leave a fleet the drill started running")] = False,
    no_plot: Annotated[
        bool,
        typer.Option(
            "--no-plot",
            help="report.html without the timeline plot (drills back to back in CI); `failover-drill report` draws it later",
        ),
    ] = False,
    sli_port: Annotated[
        int | None,
        typer.Option(
            "--sli-port",
            min=0,
            max=65535,
            help="serve live SLIs (Prometheus /metrics, JSON /analysis) on this port while the drill runs; 0 picks one",
        ),
    ] = None,
    sli_host: Annotated[
        str | None,
        typer.Option(
            "--sli-host",
            help="address the SLI endpoint listens on, where analysis runs reach it (default: 127.0.0.1; on kind the host's address on the kind network)",
        ),
    ] = None,
    freeze_deploys: Annotated[
        bool,
        typer.Option(
            "--freeze-deploys",
            help="when the page alert fires, pause every Argo Rollout in flight until payments meet the SLO again after the faults (kwok, kind)",
        ),
    ] = False,
    rollout: RolloutScenarioOpt = None,
) -> None:
    """Run a drill: bring up if needed, baseline, inject, observe, revert, recover, verdict."""
    _platform_check(platform)
    sc, topo, faults = _build(
        region=region,
        fault=fault,
        mode=mode,
        target=target,
        rate=rate,
        source=source,
        delay_ms=delay_ms,
        jitter_pct=jitter_pct,
        fail_pct=fail_pct,
        scenario=scenario,
        sets=sets,
        mesh=mesh,
        topology=topology,
        rollout=rollout,
    )
    interactive = sys.stdout.isatty()
    last_phase = [""]

    def quiet_progress(v: LiveView) -> None:
        if v.message:
            _say(v.message)
            v.message = ""
        if v.phase != last_phase[0]:
            last_phase[0] = v.phase
            _say(f"phase {v.phase} at {v.elapsed_s:.1f}s")

    live: Live | None = None

    def live_progress(v: LiveView) -> None:
        if v.message:
            err.print(f"· {v.message}", markup=False, highlight=False, soft_wrap=True)
            v.message = ""
        if live is not None:
            ratio = "—" if v.ok_ratio is None else f"{v.ok_ratio:.2%}"
            p99 = "—" if v.p99_ms is None else f"{v.p99_ms:.0f} ms"
            served = ", ".join(f"{k} {s:.0%}" for k, s in v.served.items()) or "—"
            live.update(
                f"[bold]{v.phase:<9}[/bold] {v.elapsed_s:5.1f}/{v.total_s:.0f}s  sent {v.sent}  "
                f"ok {ratio}  p99 {p99}  served by {served}"
            )

    sc = _fault_phase_for(sc, topo, platform, faults, scenario, sets)
    sli = LiveSli(slo=sc.slo.ratio) if sli_port is not None else None
    runner = Drill(
        sc,
        topo,
        state_dir=state_dir,
        runs_dir=runs_dir,
        keep_up=keep_up,
        progress=live_progress if interactive else quiet_progress,
        platform=open_platform(platform, state_dir, topo),
        sli=sli,
        plot=not no_plot,
        freeze_deploys=freeze_deploys,
    )
    # On kind the address the clusters reach is the kind network's, known once the fleet is up:
    # the drill serves the endpoint then (still before any fault).
    host = sli_host or (None if platform == "kind" else "127.0.0.1")
    with contextlib.ExitStack() as stack:
        if sli is not None and sli_port is not None:
            if host is None:
                runner.sli_port = sli_port
            else:
                server = stack.enter_context(bound_server(sli, host, sli_port))
                runner.sli_url = server.url
                _say(f"live SLIs: {server.url}/metrics and {server.url}/analysis?region={sc.region}&window=1m")
        if interactive:
            with Live("", console=err, refresh_per_second=5, transient=True) as lv:
                live = lv
                outcome = runner.run()
        else:
            outcome = runner.run()
    _print_scorecard(outcome.result, outcome.run_dir)
    raise typer.Exit(outcome.exit_code)


def _timing_line(t: dict[str, Any] | None) -> str | None:
    if not t:
        return None
    parts = [
        f"{name} {t[key]:.1f} s"
        for name, key in (
            ("up", "up_s"),
            ("steady check", "steady_check_s"),
            ("reports", "reports_s"),
            ("down", "down_s"),
        )
        if t[key] is not None
    ]
    return f"measured {t['measured_s']:.1f} s, around it {t['overhead_s']:.1f} s ({', '.join(parts)})"


def _print_scorecard(result: dict[str, Any], run_dir: Path) -> None:
    fo = result["failover"]
    ttr = "not recovered" if fo["ttr_s"] is None else f"{fo['ttr_s']:.2f} s"
    v = result["verdict"]
    word = verdict_word(v)
    reasons = "; ".join(v["reasons"])
    timing = _timing_line(result.get("timing"))
    pred = result.get("prediction")
    predicted = f"{pred['check']['verdict']}: {pred['check']['detail']}" if pred else None
    if not sys.stdout.isatty():
        # A pipe, a file or CI: one plain `key: value` line each, never wrapped at 80 columns nor
        # split inside a label, so grep and log viewers see whole lines.
        lines = [f"{k}: {val}" for k, val in scorecard_rows(result)]
        lines += [
            f"failover time: {ttr}",
            f"verdict: {word}" + (f" ({reasons})" if reasons else ""),
            *(f"check {what}: {measured}, limit {limit}, {ok}" for what, measured, limit, ok in check_rows(v)),
            *([f"prediction: {predicted}"] if predicted else []),
            *([f"wall time: {timing}"] if timing else []),
            f"report: {run_dir / 'report.html'}",
        ]
        sys.stdout.write("\n".join(lines) + "\n")
        sys.stdout.flush()
        return
    t = Table(show_header=False, box=None, pad_edge=False)
    t.add_column(style="bold")
    t.add_column()
    for k, val in scorecard_rows(result):
        t.add_row(k, val)
    out.print(t)
    out.print(f"failover time: {ttr}")
    out.print(
        {"PASSED": "[green]PASSED[/green]", "FAILED": "[red]FAILED[/red]"}.get(word, "[yellow]INCONCLUSIVE[/yellow]")
        + (": " + reasons if reasons else ""),
    )
    checks = Table(box=None, pad_edge=False)
    for col in ("check", "measured", "limit", ""):
        checks.add_column(col)
    for what, measured, limit, ok in check_rows(v):
        checks.add_row(what, measured, limit, "held" if ok == "held" else "[red]FAILED[/red]")
    out.print(checks)
    if predicted:
        _plain(f"prediction: {predicted}")
    if timing:
        out.print(f"wall time: {timing}", markup=False, highlight=False)
    out.print(f"report: {run_dir / 'report.html'}")


@app.command()
def plan(
    region: RegionOpt = None,
    fault: FaultOpt = None,
    mode: ModeOpt = None,
    target: TargetOpt = None,
    rate: RateOpt = None,
    source: SourceOpt = None,
    delay_ms: DelayOpt = None,
    jitter_pct: JitterOpt = None,
    fail_pct: FailPctOpt = None,
    scenario: ScenarioOpt = None,
    sets: SetsOpt = None,
    mesh: MeshOpt = None,
    platform: PlatformOpt = "sandbox",
    topology: TopoOpt = None,
    state_dir: StateOpt = DEFAULT_STATE,
    rollout: RolloutScenarioOpt = None,
) -> None:
    """Validate a drill and print what it would do, without touching the fleet (kind: every command)."""
    _platform_check(platform)
    sc, topo, faults = _build(
        rollout=rollout,
        region=region,
        fault=fault,
        mode=mode,
        target=target,
        rate=rate,
        source=source,
        delay_ms=delay_ms,
        jitter_pct=jitter_pct,
        fail_pct=fail_pct,
        scenario=scenario,
        sets=sets,
        mesh=mesh,
        topology=topology,
    )
    sc = _fault_phase_for(sc, topo, platform, faults, scenario, sets)
    chosen = open_platform(platform, state_dir, topo)
    if sc.rollout is not None:
        rollout_ops.check_release(sc.rollout, sc.region, topo)
        rollout_ops.require_kubernetes(chosen)
    lines = chosen.plan_lines(faults)
    for line in lines:
        _plain(line)
    if lines:
        return
    ph = sc.phases
    out.print(f"scenario {sc.name}: users in {sc.region}, {sc.traffic.rate_rps:g} req/s, mesh {topo.mesh}")
    out.print(
        f"phases: warm-up {ph.warmup_s:g}s, baseline {ph.baseline_s:g}s, fault {ph.fault_s:g}s, recovery {ph.recovery_s:g}s"
    )
    if sc.rollout is not None:
        out.print(
            f"  {sc.rollout.label()} at +{sc.rollout.at_s:g}s in {', '.join(sc.rollout.where(sc.region))} "
            "(Argo Rollouts), rolled back to stable when the drill ends",
            markup=False,
            highlight=False,
            soft_wrap=True,
        )
    for f in faults:
        end = f"{f.at_s + f.duration_s:g}s" if f.duration_s else "the end of the fault phase"
        shown = {"kind", "target", "source", "at_s", "duration_s"}
        params = ", ".join(
            f"{k} {v:g}" if isinstance(v, float) else f"{k} {v}"
            for k, v in f.model_dump().items()
            if k not in shown and v is not None
        )
        params = f" ({params})" if params else ""
        _plain(f"  inject {f.label()}{params} at +{f.at_s:g}s, revert at {end}")
    lim = sc.limits
    judged = [
        (lim.rto_s, "failover time <= {:g} s"),
        (lim.failback_s, "failback <= {:g} s"),
        (lim.max_budget_pct, "error budget <= {:g}%"),
        (lim.max_p99_ms, "p99 during the fault <= {:g} ms"),
        (lim.max_lost, "payments lost <= {:g}"),
        (lim.max_duplicated, "payments charged twice <= {:g}"),
    ]
    said = [text.format(v) for v, text in judged if v is not None]
    if sc.rollout is not None:
        said.append(
            {
                "aborted": "the release aborted by analysis in every region",
                "promoted": "the release fully out in every region",
                "not aborted": "the release not aborted",
            }[sc.rollout.expected()]
        )
    out.print(
        "verdict limits: " + (", ".join(said) or "none"),
        markup=False,
        highlight=False,
        soft_wrap=True,
    )


@app.command()
def predict(
    region: RegionOpt = None,
    fault: FaultOpt = None,
    mode: ModeOpt = None,
    target: TargetOpt = None,
    source: SourceOpt = None,
    delay_ms: DelayOpt = None,
    jitter_pct: JitterOpt = None,
    fail_pct: FailPctOpt = None,
    scenario: ScenarioOpt = None,
    sets: SetsOpt = None,
    mesh: MeshOpt = None,
    platform: PlatformOpt = "sandbox",
    topology: TopoOpt = None,
    manifests: Annotated[
        Path | None,
        typer.Option("--manifests", help="a manifests folder (base/ and profiles/<mesh>/) instead of the topology's"),
    ] = None,
    max_outage: Annotated[
        str | None,
        typer.Option("--max-outage", help="fail (exit 1) when a fault's predicted outage can exceed this, e.g. 5s"),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="print the predictions as JSON")] = False,
) -> None:
    """Predict what each fault does to users, from the manifests alone, before anything breaks."""
    from failover_drill.config.manifests import parse_duration
    from failover_drill.predict import scenario as predictions

    _platform_check(platform)
    limit = parse_duration(max_outage, "--max-outage") if max_outage is not None else None
    sc, topo, faults = _build(
        region=region,
        fault=fault,
        mode=mode,
        target=target,
        rate=None,
        source=source,
        delay_ms=delay_ms,
        jitter_pct=jitter_pct,
        fail_pct=fail_pct,
        scenario=scenario,
        sets=sets,
        mesh=mesh,
        topology=topology,
    )
    if manifests is not None:
        if not manifests.is_dir():
            raise ConfigError(f"{manifests} is not a folder", field="--manifests", hint="give the folder holding base/")
        topo = topo.model_copy(update={"manifests": manifests.resolve()})
    ctx = predictions.context(sc, topo, platform, max_outage_s=limit)
    chosen = fault is not None or scenario is not None
    preds = predictions.for_faults(faults, ctx) if chosen else predictions.every_kind(ctx)
    checked = preds if chosen else [p for p in preds if p.kind in predictions.infrastructure_kinds()]
    over = [p for p in checked if limit is not None and _predicted_outage(p) > limit]
    if as_json:
        print(json.dumps([p.to_json() for p in preds], indent=2))
    else:
        _print_predictions(preds, limit, over)
    if over:
        raise typer.Exit(1)


def _predicted_outage(p: Any) -> float:
    if p.expect == "no-recovery":
        return float("inf")
    return 0.0 if p.outage_s is None else float(p.outage_s.hi)


def _print_predictions(preds: list[Any], limit: float | None, over: list[Any]) -> None:
    first = preds[0]
    _plain(f"mesh {first.profile} on {first.platform}, users in {first.users}")
    for p in preds:
        _plain(f"{p.fault}: {p.headline()}")
        for line in p.reasoning:
            _plain(f"  - {line}")
    traps = {f.trap: f for p in preds for f in p.findings}
    if traps:
        _plain("traps in these manifests:")
        for f in traps.values():
            _plain(f"  {f.trap} ({f.where}): {f.detail}; fix: {f.fix}")
    if limit is not None:
        for p in over:
            worst = "never, while the fault is on" if p.expect == "no-recovery" else f"{_predicted_outage(p):.3g} s"
            _plain(
                f"check failed: {p.fault} can leave users without service for {worst}, over {limit:g} s ({p.decided_by})"
            )
        if not over:
            _plain(f"check passed: every fault's predicted outage is within {limit:g} s")


@app.command()
def report(run: Annotated[Path, typer.Argument(help="runs/<id> (a folder holding journal.jsonl)")]) -> None:
    """Rebuild result.json, report.md and report.html from a run's journal alone."""
    journal = run / "journal.jsonl"
    if not journal.exists():
        raise ConfigError("no journal.jsonl here", source=str(run), hint="pass a runs/<id> folder")
    result = write_reports(run)
    _print_scorecard(result, run)


@app.command()
def history(
    scenario: Annotated[str | None, typer.Option("--scenario", help="only this scenario")] = None,
    runs_dir: Annotated[Path, typer.Option("--runs-dir")] = Path("runs"),
) -> None:
    """TTR, budget and verdict over time; flags regressions against earlier runs' median."""
    rows = History(runs_dir / "history.sqlite").rows(scenario)
    if not rows:
        out.print("no runs recorded yet")
        return
    t = Table()
    for col in (
        "run", "scenario", "fault", "platform", "mesh", "rate", "TTR s", "budget %", "overhead s", "verdict", "regression",
    ):  # fmt: skip
        t.add_column(col)
    for r in rows:
        fault = f"{r.fault} ({r.mode})" if r.mode else r.fault
        t.add_row(
            r.run_id,
            r.scenario,
            fault,
            r.platform,
            r.mesh,
            "—" if r.rate_rps is None else f"{r.rate_rps:g}",
            "—" if r.ttr_s is None else f"{r.ttr_s:.2f}",
            f"{r.budget_pct:.3g}",
            "—" if r.overhead_s is None else f"{r.overhead_s:.1f}",
            "pass" if r.passed else "FAIL",
            "; ".join(
                x for x in (r.regression or (f"not compared: {r.excluded}" if r.excluded else None), r.slower) if x
            ),
        )
    out.print(t)
    out.print(
        "regressions compare a run with earlier runs of the same fault, mode, mesh, platform and rate; "
        "overhead (the time outside the measured phases) with earlier runs on the same platform"
    )


@app.command()
def recover(state_dir: StateOpt = DEFAULT_STATE) -> None:
    """Repair what faults left on the fleet, revert every fault the ledger still holds, and stop
    fleets whose drill died."""
    FleetOwnership(state_dir).refuse_if_owned("recover it")
    rep = run_recover(state_dir)
    for aside in rep.ledger_set_aside:
        _plain(f"the fault ledger was torn: set aside as {aside} (the fleet itself was checked)")
    for what in rep.repaired:
        _plain(f"repaired: {what}")
    for label in rep.reverted:
        out.print(f"reverted: {label}")
    for line in rep.orphans:
        out.print(line)
    for f in rep.unrepaired:
        err.print(f, markup=False, highlight=False, soft_wrap=True)
    for f in rep.failed:
        err.print(f"could not revert {f}", markup=False, highlight=False, soft_wrap=True)
    if rep.failed or rep.unrepaired:
        raise typer.Exit(3)
    if not rep.reverted and not rep.orphans and not rep.repaired:
        out.print("nothing to recover")


class _DayScreen:
    """A game day's live view: which drill of how many, the budget burned so far, and the drill's
    own live line (phase, countdown, success ratio, p99, serving regions)."""

    def __init__(self) -> None:
        self.interactive = sys.stderr.isatty()
        self.header = ""
        self.budget_before = 0.0
        self.live: Live | None = None
        self.last_phase = ""

    def drill_starting(self, i: int, n: int, drill: GameDayDrill, budget_so_far: float) -> None:
        self.header = f"drill {i + 1}/{n} {drill.name!r}"
        self.budget_before = budget_so_far
        _say(f"{self.header} · budget burned today {budget_so_far:.3g}%")
        self.last_phase = ""
        if self.interactive:
            self.live = Live("", console=err, refresh_per_second=5, transient=True)
            self.live.start()

    def progress(self, v: LiveView) -> None:
        if v.message:
            self.say(v.message)
            v.message = ""
        if self.live is not None:
            ratio = "—" if v.ok_ratio is None else f"{v.ok_ratio:.2%}"
            p99 = "—" if v.p99_ms is None else f"{v.p99_ms:.0f} ms"
            served = ", ".join(f"{k} {s:.0%}" for k, s in v.served.items()) or "—"
            left = max(0.0, v.phase_end_s - v.elapsed_s)
            today = self.budget_before + v.budget_pct
            self.live.update(
                f"{self.header} · budget burned today {today:.3g}% · Ctrl-C aborts the drill\n"
                f"[bold]{v.phase:<9}[/bold] {left:5.1f} s left in the phase  ok {ratio}  p99 {p99}  served by {served}"
            )
        elif v.phase != self.last_phase:
            self.last_phase = v.phase
            _say(f"phase {v.phase} at {v.elapsed_s:.1f}s")

    def drill_over(self) -> None:
        if self.live is not None:
            self.live.stop()
            self.live = None

    def say(self, message: str) -> None:
        if self.live is not None:
            err.print(f"· {message}", markup=False, highlight=False, soft_wrap=True)
        else:
            _say(message)


def _gameday_experiments(f: GameDayFile, folder: Path) -> None:
    """A game day as a Chaos Toolkit experiment set, one experiment per single-fault drill (a
    compound drill's schedule has no equivalent in an experiment's method: said, and left out)."""
    plan_day(f, day_topology(f.day, f.path))
    folder.mkdir(parents=True, exist_ok=True)
    for i, d in enumerate(f.day.drills):
        name = slug(d.name)
        if len(d.faults) != 1:
            _say(f"drill {i + 1} ({d.name!r}) left out: {len(d.faults)} faults on a schedule, one per experiment")
            continue
        exp = drill_experiment(
            name,
            f"{f.day.title}: {d.name}",
            d.faults[0].model_dump(mode="json"),
            observe_s=d.phases.fault_s,
            settle_s=d.phases.recovery_s,
            platform=f.day.platform,
            region=d.region,
            rate_rps=d.traffic.rate_rps,
        )
        path = folder / f"{i + 1:02d}-{name}.json"
        path.write_text(json.dumps(exp, indent=2) + "\n")
        sys.stdout.write(f"{path}\n")


@app.command()
def gameday(
    file: Annotated[Path, typer.Argument(help="the game-day YAML (see examples/gameday.yaml)")],
    yes: Annotated[
        bool, typer.Option("--yes", help="answer nothing: every drill runs, every checkpoint takes its default")
    ] = False,
    resume: Annotated[
        Path | None,
        typer.Option("--resume", help="runs/gamedays/<id> of a day that stopped: go on from its next drill"),
    ] = None,
    state_dir: StateOpt = DEFAULT_STATE,
    runs_dir: Annotated[Path, typer.Option("--runs-dir", help="where runs/<id>/ and runs/gamedays/<id>/ go")] = Path(
        "runs"
    ),
    keep_up: Annotated[bool, typer.Option("--keep-up", help="leave a fleet the game day started running")] = False,
    chaostoolkit: Annotated[
        Path | None,
        typer.Option(
            "--chaostoolkit",
            help="run nothing: write the day's drills as Chaos Toolkit experiments into this folder",
        ),
    ] = None,
) -> None:
    """Run a game day: its drills in order on one fleet, the room's answers after each, and an
    after-action report (Markdown and HTML)."""
    if chaostoolkit is not None:
        _gameday_experiments(load_gameday(file), chaostoolkit)
        return
    screen = _DayScreen()
    runner = GameDayRunner(
        load_gameday(file),
        state_dir=state_dir,
        runs_dir=runs_dir,
        room=AutoRoom() if yes else TerminalRoom(),
        screen=screen,
        keep_up=keep_up,
        resume=resume,
    )
    try:
        outcome = runner.run()
    finally:
        screen.drill_over()
    # Plain lines, never wrapped: the paths are for copying.
    lines = [
        f"game day {outcome.status}",
        f"after-action report: {outcome.report} and {outcome.report.with_suffix('.html')}",
    ]
    if outcome.status != "completed":
        lines.append(f"resume with: failover-drill gameday {file} --resume {outcome.day_dir}")
    sys.stdout.write("\n".join(lines) + "\n")
    sys.stdout.flush()
    raise typer.Exit(outcome.exit_code)


rollouts_app = typer.Typer(
    no_args_is_help=True,
    help="Argo Rollouts in the fleet's clusters (kwok, kind): status, the kubectl plugin's actions, the deploy freeze.",
)
app.add_typer(rollouts_app, name="rollouts")
RolloutOpt = Annotated[str, typer.Option("--rollout", help="the Rollout's name")]
NamespaceOpt = Annotated[str, typer.Option("--namespace", "-n", help="the Rollout's namespace")]
ClusterOpt = Annotated[
    str | None, typer.Option("--region", "-r", help="only this region's cluster (default: every region)")
]


@app.command(context_settings={"allow_extra_args": True, "ignore_unknown_options": True})
def enter(ctx: typer.Context, state_dir: StateOpt = DEFAULT_STATE) -> None:
    """Run a command where a kwok fleet brought up without root lives (its own user and network
    namespace): `failover-drill enter -- chaos run experiments/zone-loss.json`. Elsewhere it runs
    the command as it is."""
    argv = list(ctx.args)
    if argv[:1] == ["--"]:
        argv = argv[1:]
    if not argv:
        raise ConfigError("no command to run", field="COMMAND", hint="failover-drill enter -- COMMAND [ARGS...]")
    holder = userns.holder(platform_dir(state_dir, "kwok").resolve()) if userns.needed() else None
    env = dict(os.environ)
    if holder is not None:
        argv = [*userns.enter_argv(holder), *argv]
        env[userns.INSIDE_ENV] = str(holder)
    sys.stdout.flush()
    try:
        os.execvpe(argv[0], argv, env)
    except OSError as exc:
        raise ConfigError(
            f"cannot run {argv[0]!r}: {exc.strerror}", field="COMMAND", hint="check its name and PATH"
        ) from None


def _print_lines(lines: list[str], none: str) -> None:
    sys.stdout.write("\n".join(lines or [none]) + "\n")


@rollouts_app.command("status")
def rollouts_status(
    state_dir: StateOpt = DEFAULT_STATE,
    platform: PlatformOpt = "sandbox",
    region: ClusterOpt = None,
    as_json: Annotated[bool, typer.Option("--json", help="machine-readable")] = False,
) -> None:
    """What every Rollout is doing, region by region, as the API servers say."""
    got = rollout_ops.status(open_platform(platform, state_dir), region)
    held = rollout_ops.frozen(state_dir)
    if as_json:
        out.print_json(json.dumps({"rollouts": [r.as_json() for r in got], "frozen": held}))
        return
    _print_lines([r.line() for r in got], "no Rollout in the fleet")
    for r, refs in held.items():
        for ref in refs:
            sys.stdout.write(f"{r}: {ref} is held by the deploy freeze (`failover-drill rollouts thaw` resumes it)\n")


def _rollout_action(action: str) -> Any:
    def command(
        state_dir: StateOpt = DEFAULT_STATE,
        platform: PlatformOpt = "sandbox",
        rollout: RolloutOpt = rollout_ops.DEFAULT_ROLLOUT,
        namespace: NamespaceOpt = rollout_ops.DEFAULT_NAMESPACE,
        region: ClusterOpt = None,
    ) -> None:
        _print_lines(rollout_ops.act(open_platform(platform, state_dir), action, rollout, namespace, region), "")

    command.__doc__ = {
        "abort": "Abort the Rollout: back to the stable version (kubectl argo rollouts abort).",
        "retry": "Retry an aborted Rollout (kubectl argo rollouts retry rollout).",
        "promote": "Promote the Rollout past its current pause (kubectl argo rollouts promote).",
        "promote-full": "Promote the Rollout fully, skipping the remaining steps and analysis (promote --full).",
        "pause": "Pause the Rollout (kubectl argo rollouts pause).",
    }[action]
    return command


for _action in rollout_ops.ACTIONS:
    rollouts_app.command(_action)(_rollout_action(_action))


@rollouts_app.command("freeze")
def rollouts_freeze(state_dir: StateOpt = DEFAULT_STATE, platform: PlatformOpt = "sandbox") -> None:
    """The deploy freeze: pause every Rollout in flight in every region (thaw resumes exactly those)."""
    paused = rollout_ops.freeze(open_platform(platform, state_dir), state_dir)
    _print_lines(rollout_ops.freeze_lines(paused), "no Rollout in flight: nothing to pause")


@rollouts_app.command("thaw")
def rollouts_thaw(state_dir: StateOpt = DEFAULT_STATE, platform: PlatformOpt = "sandbox") -> None:
    """Lift the deploy freeze: resume the Rollouts it paused."""
    _print_lines(rollout_ops.thaw(open_platform(platform, state_dir), state_dir), "no deploy freeze in place")


def main() -> None:
    obs.configure(os.environ.get("FAILOVER_DRILL_LOG", "warning"))
    # A command that meets a kwok fleet brought up without root runs again inside its namespace.
    userns.allow_reexec(sys.argv)
    try:
        # Without standalone mode click returns a command's Exit code instead of exiting.
        rc = app(standalone_mode=False)
        sys.exit(rc if isinstance(rc, int) else 0)
    except DrillError as exc:
        # Plain write: the message names fields in [brackets], which rich would take for markup.
        sys.stderr.write(f"error: {exc}\n")
        sys.exit(exc.exit_code)
    except typer.Exit as exc:
        sys.exit(exc.exit_code)
    except KeyboardInterrupt:
        err.print("interrupted")
        sys.exit(EXIT_INTERRUPTED)
    except click.exceptions.ClickException as exc:
        # Usage mistakes (an unknown option or command, a value of the wrong type, a missing
        # argument, no command at all) arrive here in non-standalone mode: click's usage message.
        exc.show()
        sys.exit(EXIT_BAD_INPUT)


if __name__ == "__main__":
    main()
