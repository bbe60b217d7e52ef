"""Commands the kind platform runs (docker, kind, kubectl, istioctl, cilium, helm, tc inside
node containers), and two runners: one that runs them and one that only records them.

Every step is data first, so `failover-drill plan --platform kind` prints exactly what `up`
and each fault would run, and tests check the plan without Docker.
"""

from __future__ import annotations

import shlex
import shutil
import subprocess
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Protocol

from failover_drill import obs
from failover_drill.errors import PlatformError

log = obs.get(__name__)

INSTALL_HINTS = {
    "docker": "install Docker Engine (https://docs.docker.com/engine/install/) and start it",
    "kind": "go install sigs.k8s.io/kind@v0.24.0, or download a release binary from https://kind.sigs.k8s.io",
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

    def shell(self) -> str:
        cmd = shlex.join(self.argv)
        if self.pipe_from:
            cmd = f"{shlex.join(self.pipe_from)} | {cmd}"
        if self.stdin is not None:
            body = f"# ({len(self.stdin.splitlines())} lines of key material, not shown)" if self.secret else self.stdin
            cmd += f" <<'EOF'\n{body.rstrip()}\nEOF"
        return cmd


class Runner(Protocol):
    def run(self, step: Step) -> str:
        """Run the step, return its stdout; raise PlatformError on failure (unless ok_to_fail)."""
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


@dataclass
class SubprocessRunner:
    """Runs steps for real, one at a time, with a timeout each and retries where a step asks."""

    progress: Callable[[str], None] | None = None
    _last_title: str = ""

    def run(self, step: Step) -> str:
        last = ""
        if self.progress and step.title != self._last_title:
            self.progress(step.title)
        self._last_title = step.title
        for attempt in range(1, step.attempts + 1):
            log.info("kind.step", title=step.title, cmd=step.shell()[:400], attempt=attempt)
            try:
                stdin = step.stdin
                if step.pipe_from:
                    first = subprocess.run(
                        step.pipe_from, capture_output=True, text=True, timeout=step.timeout_s, check=True
                    )
                    stdin = first.stdout
                done = subprocess.run(
                    step.argv, input=stdin, capture_output=True, text=True, timeout=step.timeout_s, check=True
                )
                return done.stdout
            except subprocess.CalledProcessError as exc:
                last = (exc.stderr or exc.stdout or "").strip()[-800:]
            except subprocess.TimeoutExpired:
                last = f"timed out after {step.timeout_s:g} s"
            except FileNotFoundError as exc:
                raise PlatformError(
                    f"{step.title}: {exc.filename} is not installed",
                    hint=INSTALL_HINTS.get(str(exc.filename), "install it"),
                ) from None
            if attempt < step.attempts:
                time.sleep(min(2.0 * attempt, 10.0))
        if step.ok_to_fail:
            log.info("kind.step_failed_ok", title=step.title, error=last)
            return ""
        raise PlatformError(f"{step.title} failed: {last}", hint=f"the command was: {step.shell()[:300]}")


@dataclass
class RecordingRunner:
    """Records steps instead of running them. Queries get the answers given (by a substring of
    the command), else a placeholder naming what would have been read."""

    answers: dict[str, str] = field(default_factory=dict)
    steps: list[Step] = field(default_factory=list)

    def record(self, steps: Iterable[Step]) -> list[Step]:
        """Record steps produced elsewhere (queries made while producing them are recorded too)."""
        start = len(self.steps)
        for step in steps:
            self.steps.append(step)
        return self.steps[start:]

    def run(self, step: Step) -> str:
        self.steps.append(step)
        shell = step.shell()
        for needle, answer in self.answers.items():
            if needle in shell:
                return answer
        return f"<{step.title}>"

    def commands(self) -> list[str]:
        return [s.shell() for s in self.steps]
