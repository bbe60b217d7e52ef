"""Traffic from inside the users' region: an Indexed Job in that region's kind cluster, one pod per
traffic worker, each running failover_drill.traffic.remote_worker against the front door (the
MultiClusterService) at its kind-network address, samples on stdout for `kubectl logs -f`.

The pods run on the region's control-plane node (tolerating its taint): it belongs to no zone,
so a zone loss does not take the users with it; they sit outside the mesh (no sidecar), as
users do. Start and stop reach each pod as files written through `kubectl exec`.
"""

from __future__ import annotations

import os
import re
from typing import Any

from failover_drill.config.topology import Topology
from failover_drill.errors import PlatformError
from failover_drill.platforms.kind.api import dump, kubectl
from failover_drill.platforms.kind.cluster_config import names, on_control_plane
from failover_drill.platforms.kind.commands import Runner, Step
from failover_drill.platforms.kube.workload import IMAGE, NAMESPACE
from failover_drill.platforms.polling import poll

CONTROL_DIR = "/run/failover-drill"
WORKER_APP = "failover-drill-traffic"
OWNER_LABEL = "failover-drill.io/owner-pid"  # the drill that started the Job: `recover` keeps a live one's


def job_name(key_prefix: str) -> str:
    slug = re.sub(r"[^a-z0-9-]+", "-", key_prefix.lower()).strip("-")
    return f"fd-traffic-{slug}"[:63].rstrip("-")


def traffic_job(
    name: str,
    *,
    url: str,
    region: str,
    spec_json: str,
    duration_s: float,
    workers: int,
    key_prefix: str,
    owner_pid: int,
) -> dict[str, Any]:
    """The Indexed Job: worker k of n is the pod with completion index k."""
    container = {
        "name": "worker",
        "image": IMAGE,
        "imagePullPolicy": "IfNotPresent",
        "command": ["python", "-m", "failover_drill.traffic.remote_worker"],
        "args": [
            "--url",
            url,
            "--region",
            region,
            "--duration",
            f"{duration_s:g}",
            "--spec",
            spec_json,
            "--workers",
            str(workers),
            "--key-prefix",
            key_prefix,
            "--control-dir",
            CONTROL_DIR,
        ],
        "volumeMounts": [{"name": "control", "mountPath": CONTROL_DIR}],
        # A worker holding its schedule needs a core's worth when it gets busy.
        "resources": {"requests": {"cpu": "500m", "memory": "128Mi"}},
    }
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {
            "name": name,
            "namespace": NAMESPACE,
            "labels": {"app": WORKER_APP, OWNER_LABEL: str(owner_pid)},
        },
        "spec": {
            "completionMode": "Indexed",
            "completions": workers,
            "parallelism": workers,
            "backoffLimit": 0,  # a worker that dies is a loss to report, not a run to repeat
            "activeDeadlineSeconds": int(duration_s) + 900,
            "ttlSecondsAfterFinished": 600,
            "template": {
                "metadata": {
                    "labels": {"app": WORKER_APP, "sidecar.istio.io/inject": "false"},
                },
                "spec": {
                    "restartPolicy": "Never",
                    **on_control_plane(),
                    "containers": [container],
                    "volumes": [{"name": "control", "emptyDir": {}}],
                },
            },
        },
    }


class KindTrafficJobs:
    """RemoteWorkers (traffic.remote_pool) as a Job in the users' region's cluster."""

    def __init__(
        self,
        topo: Topology,
        run: Runner,
        *,
        region: str,
        url: str,
        spec_json: str,
        duration_s: float,
        workers: int,
        key_prefix: str,
        owner_pid: int | None = None,
    ) -> None:
        self.run = run
        self.ctx = names(topo)[region].context
        self.name = job_name(key_prefix)
        self.workers = workers
        self.job = traffic_job(
            self.name,
            url=url,
            region=region,
            spec_json=spec_json,
            duration_s=duration_s,
            workers=workers,
            key_prefix=key_prefix,
            owner_pid=os.getpid() if owner_pid is None else owner_pid,
        )

    def describe(self) -> str:
        return f"job/{self.name} in namespace {NAMESPACE}, context {self.ctx}"

    def launch(self) -> None:
        # Still a kubectl subprocess (as the Job's reads and deletes below): the traffic tests drive
        # these Jobs through a stand-in kubectl.
        self.run.run(
            Step(
                f"start {self.workers} traffic worker(s) as job/{self.name}",
                kubectl(self.ctx, "apply", "-f", "-"),
                stdin=dump([self.job]),
                attempts=2,
            )
        )

    def running(self, timeout_s: float) -> list[str]:
        """The workers' pods, ordered by completion index, once every one is Running."""
        fmt = (
            "jsonpath={range .items[*]}{.metadata.name} "
            '{.metadata.annotations.batch\\.kubernetes\\.io/job-completion-index} {.status.phase}{"\\n"}{end}'
        )
        seen = ""
        ready: list[str] = []

        def not_yet() -> str | None:
            nonlocal seen
            seen = self.run.run(
                Step(
                    f"traffic pods of job/{self.name}",
                    kubectl(self.ctx, "-n", NAMESPACE, "get", "pods", "-l", f"job-name={self.name}", "-o", fmt),
                    timeout_s=30,
                    ok_to_fail=True,
                )
            )
            pods: dict[int, str] = {}
            phases = []
            for line in seen.splitlines():
                parts = line.split()
                if len(parts) == 3 and parts[1].isdigit():
                    pods[int(parts[1])] = parts[0]
                    phases.append(parts[2])
            if len(pods) == self.workers and all(p == "Running" for p in phases):
                ready[:] = [pods[k] for k in sorted(pods)]
                return None
            if any(p in ("Failed", "Succeeded") for p in phases):
                return None  # over: no point in waiting
            return seen or "no pods"

        poll(not_yet, timeout_s, 1.0)
        if ready:
            return ready
        raise PlatformError(
            f"the traffic workers of job/{self.name} are not running: {seen.strip() or 'no pods'}",
            hint=f"kubectl --context {self.ctx} -n {NAMESPACE} describe job {self.name}",
        )

    def follow_argv(self, worker: str) -> list[str]:
        return list(kubectl(self.ctx, "-n", NAMESPACE, "logs", "-f", f"pod/{worker}"))

    def _write(self, worker: str, file: str, text: str, ok_to_fail: bool) -> None:
        self.run.run(
            Step(
                f"{worker}: {file} <- {text}",
                kubectl(
                    self.ctx,
                    "-n",
                    NAMESPACE,
                    "exec",
                    worker,
                    "--",
                    "python",
                    "-c",
                    "import sys; open(sys.argv[1], 'w').write(sys.argv[2])",
                    f"{CONTROL_DIR}/{file}",
                    text,
                ),
                timeout_s=30,
                ok_to_fail=ok_to_fail,
            )
        )

    def start(self, worker: str, wall: float) -> None:
        self._write(worker, "start", f"{wall:.6f}", ok_to_fail=False)

    def stop(self, worker: str) -> None:
        self._write(worker, "stop", "stop", ok_to_fail=True)

    def cleanup(self) -> None:
        self.run.run(delete_job_step(self.ctx, self.name))


def list_traffic_jobs(topo: Topology, run: Runner) -> list[tuple[str, str, int | None]]:
    """(context, job, owner pid) of every traffic Job in the fleet's clusters."""
    fmt = 'jsonpath={range .items[*]}{.metadata.name} {.metadata.labels.failover-drill\\.io/owner-pid}{"\\n"}{end}'
    out: list[tuple[str, str, int | None]] = []
    for n in names(topo).values():
        text = run.run(
            Step(
                f"traffic jobs in {n.region}",
                kubectl(n.context, "-n", NAMESPACE, "get", "jobs", "-l", f"app={WORKER_APP}", "-o", fmt),
                timeout_s=30,
                ok_to_fail=True,
            )
        )
        for line in text.splitlines():
            parts = line.split()
            if parts:
                pid = int(parts[1]) if len(parts) > 1 and parts[1].isdigit() else None
                out.append((n.context, parts[0], pid))
    return out


def delete_job_step(ctx: str, name: str) -> Step:
    return Step(
        f"remove job/{name}",
        kubectl(
            ctx, "-n", NAMESPACE, "delete", "job", name, "--ignore-not-found", "--wait=false", "--cascade=background"
        ),
        timeout_s=60,
        ok_to_fail=True,
    )
