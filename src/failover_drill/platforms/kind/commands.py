"""What the kind platform does, as data: commands for what has no API (docker, kind, istioctl,
cilium, tc inside node containers) and Kubernetes API operations done through the kube layer
(platforms/kube: server-side apply, scale, secret replacement, reads, rollout waits, exec into a
pod), each shown to humans as the kubectl command that would do the same; and two runners: one
that runs them and one that records them.

Every step is data first, so `failover-drill plan --platform kind` prints exactly what `up`
and each fault would do, and tests check the plan without Docker (and run the API steps
against a real API server).
"""

from __future__ import annotations

import shlex
import shutil
import subprocess
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol, TypeAlias

from tenacity import Retrying, retry_if_exception_type, stop_after_attempt, wait_incrementing

from failover_drill import obs
from failover_drill.errors import PlatformError
from failover_drill.platforms.kind.cluster_config import KIND_VERSION

if TYPE_CHECKING:
    from failover_drill.platforms.kube.client import Kube

log = obs.get(__name__)

INSTALL_HINTS = {
    "docker": "install Docker Engine (https://docs.docker.com/engine/install/) and start it",
    # The kind release whose default node image is the one the clusters run (cluster_config).
    "kind": f"go install sigs.k8s.io/kind@v{KIND_VERSION}, or download the v{KIND_VERSION} release binary "
    "from https://github.com/kubernetes-sigs/kind/releases",
    "kubectl": "https://kubernetes.io/docs/tasks/tools/",
    "istioctl": "curl -L https://istio.io/downloadIstio | sh - and put istio-*/bin on PATH",
    "cilium": "the cilium CLI: https://github.com/cilium/cilium-cli/releases",
    "helm": "https://helm.sh/docs/intro/install/",
}


@dataclass(frozen=True)
class Step:
    """One command. stdin is literal text (a manifest); `pipe_from` runs first and feeds its
    stdout in (e.g. `istioctl create-remote-secret | kubectl apply -f -`)."""

    title: str
    argv: tuple[str, ...]
    stdin: str | None = None
    pipe_from: tuple[str, ...] | None = None
    timeout_s: float = 300.0
    # Retried on failure: API servers and webhooks that are still starting.
    attempts: int = 1
    # A failure that is fine (revert of something already gone).
    ok_to_fail: bool = False
    # stdin holds key material: never printed in plans or logs.
    secret: bool = False
    # A wait on a command that only reports (`istioctl remote-clusters`): given its stdout, None when
    # done, else why not yet; not yet counts as a failed attempt (so give the step attempts).
    until: Callable[[str], str | None] | None = field(default=None, compare=False, repr=False)

    def shell(self) -> str:
        return _shell(self.argv, self.pipe_from, self.stdin, self.secret)


def _shell(argv: tuple[str, ...], left: tuple[str, ...] | None, stdin: str | None, secret: bool) -> str:
    cmd = shlex.join(argv)
    if left:
        cmd = f"{shlex.join(left)} | {cmd}"
    if stdin is not None:
        body = f"# ({len(stdin.splitlines())} lines of key material, not shown)" if secret else stdin
        cmd += f" <<'EOF'\n{body.rstrip()}\nEOF"
    return cmd


# The Kube of a kubeconfig context (platforms.kube.client.KubeContexts).
KubeFor: TypeAlias = "Callable[[str], Kube]"
# What an API step does: given the Kube of any context and the output of its pipe_from command
# (None without one), make the calls and return what the kubectl equivalent would print.
ApiCall: TypeAlias = "Callable[[KubeFor, str | None], str]"


@dataclass(frozen=True)
class ApiStep:
    """One Kubernetes API operation in `context`, done through the kube layer when run.

    For humans (plans, logs, errors) it is the kubectl command that would do the same: `argv`
    (with `stdin`, the manifest it applies) is that command and is never executed; `call` does
    the work. `pipe_from` is a command with no API (`istioctl create-remote-secret`) that runs
    first, its stdout handed to `call`; `reads` is an API read `call` makes first, shown as the
    left side of a pipe."""

    title: str
    context: str
    argv: tuple[str, ...]
    call: ApiCall = field(compare=False, repr=False)
    stdin: str | None = None
    pipe_from: tuple[str, ...] | None = None
    reads: tuple[str, ...] | None = None
    timeout_s: float = 300.0
    attempts: int = 1
    ok_to_fail: bool = False
    secret: bool = False

    def shell(self) -> str:
        return _shell(self.argv, self.pipe_from or self.reads, self.stdin, self.secret)


AnyStep: TypeAlias = Step | ApiStep


class Runner(Protocol):
    def run(self, step: AnyStep) -> str:
        """Run the step, return its stdout (an API step: what its kubectl equivalent would print);
        raise PlatformError on failure (unless ok_to_fail)."""
        ...


def missing_tools(tools: set[str]) -> list[str]:
    return sorted(t for t in tools if shutil.which(t) is None)


def require_tools(tools: set[str], why: str) -> None:
    missing = missing_tools(tools)
    if missing:
        hints = "; ".join(f"{t}: {INSTALL_HINTS.get(t, 'install it')}" for t in missing)
        raise PlatformError(
            f"{why} needs {', '.join(sorted(tools))} on PATH; missing: {', '.join(missing)}", hint=hints
        )


class _Retry(Exception):
    """One attempt failed in a way a later attempt may not."""


def _with_attempts(step: AnyStep, once: Callable[[], str]) -> str:
    """Run once() up to step.attempts times, 2, 4, ... 10 s apart (API servers and webhooks that
    are still starting); any error but _Retry ends it at once."""
    try:
        for attempt in Retrying(
            stop=stop_after_attempt(step.attempts),
            wait=wait_incrementing(start=2.0, increment=2.0, max=10.0),
            retry=retry_if_exception_type(_Retry),
            reraise=True,
        ):
            with attempt:
                n = attempt.retry_state.attempt_number
                log.info("kind.step", title=step.title, cmd=step.shell()[:400], attempt=n)
                return once()
    except _Retry as exc:
        last = str(exc)
    else:  # pragma: no cover - Retrying either returns through once() or raises
        last = ""
    if step.ok_to_fail:
        log.info("kind.step_failed_ok", title=step.title, error=last)
        return ""
    what = "the kubectl equivalent" if isinstance(step, ApiStep) else "the command"
    raise PlatformError(f"{step.title} failed: {last}", hint=f"{what} was: {step.shell()[:300]}")


def _command(title: str, argv: tuple[str, ...], stdin: str | None, timeout_s: float) -> str:
    try:
        return subprocess.run(argv, input=stdin, capture_output=True, text=True, timeout=timeout_s, check=True).stdout
    except subprocess.CalledProcessError as exc:
        raise _Retry((exc.stderr or exc.stdout or "").strip()[-800:]) from None
    except subprocess.TimeoutExpired:
        raise _Retry(f"timed out after {timeout_s:g} s") from None
    except FileNotFoundError as exc:
        raise PlatformError(
            f"{title}: {exc.filename} is not installed", hint=INSTALL_HINTS.get(str(exc.filename), "install it")
        ) from None


def run_step(step: AnyStep, kubes: KubeFor) -> str:
    """Run one step for real: a command as a subprocess, an API step through the kube layer."""

    def once() -> str:
        if isinstance(step, ApiStep):
            piped = _command(step.title, step.pipe_from, None, step.timeout_s) if step.pipe_from else None
            try:
                return step.call(kubes, piped)
            except PlatformError as exc:
                raise _Retry(exc.message) from None
        stdin = _command(step.title, step.pipe_from, None, step.timeout_s) if step.pipe_from else step.stdin
        out = _command(step.title, step.argv, stdin, step.timeout_s)
        why = step.until(out) if step.until else None
        if why:
            raise _Retry(why)
        return out

    return _with_attempts(step, once)


def default_kubes() -> KubeFor:
    """The contexts of the kubeconfig kind writes to ($KUBECONFIG or ~/.kube/config)."""
    from failover_drill.platforms.kube.client import KubeContexts  # loads the kubernetes client only when used

    return KubeContexts()


@dataclass
class SubprocessRunner:
    """Runs steps for real, one at a time: commands as subprocesses (with a timeout each), API
    steps through the kube layer on `kubes` (default: the kubeconfig kind writes to); retries
    where a step asks."""

    progress: Callable[[str], None] | None = None
    kubes: KubeFor | None = None
    _last_title: str = ""

    def run(self, step: AnyStep) -> str:
        if self.progress and step.title != self._last_title:
            self.progress(step.title)
        self._last_title = step.title
        if self.kubes is None and isinstance(step, ApiStep):
            self.kubes = default_kubes()
        return run_step(step, self.kubes or _no_kubes)


def _no_kubes(context: str) -> Kube:
    raise PlatformError(f"no Kubernetes client for {context}")


@dataclass
class RecordingRunner:
    """Records steps instead of running them. Queries get the answers given (by a substring of
    the command), else a placeholder naming what would have been read.

    With `kubes`, API steps are also run through the kube layer against those clusters (a real
    API server in tests) while commands (docker, tc, istioctl, ...) stay recorded; an API step fed
    by a command (pipe_from) is only recorded, since its input would come from that command."""

    answers: dict[str, str] = field(default_factory=dict)
    steps: list[AnyStep] = field(default_factory=list)
    kubes: KubeFor | None = None

    def record(self, steps: Iterable[AnyStep]) -> list[AnyStep]:
        """Record steps produced elsewhere (queries made while producing them are recorded too)."""
        start = len(self.steps)
        for step in steps:
            self.steps.append(step)
        return self.steps[start:]

    def run(self, step: AnyStep) -> str:
        self.steps.append(step)
        if self.kubes is not None and isinstance(step, ApiStep) and step.pipe_from is None:
            return run_step(step, self.kubes)
        shell = step.shell()
        for needle, answer in self.answers.items():
            if needle in shell:
                return answer
        return f"<{step.title}>"

    def commands(self) -> list[str]:
        return [s.shell() for s in self.steps]
