"""Traffic from inside the users' region: an Indexed Job in that region's kind cluster, one pod per
traffic worker, each running failover_drill.traffic.remote_worker against the front door (the
MultiClusterService) at its kind-network address, samples on stdout.

The pods run on the region's control-plane node (tolerating its taint): it belongs to no zone,
so a zone loss does not take the users with it; they sit outside the mesh (no sidecar), as
users do. The Job is applied, its pods and status read, their logs followed and the Job deleted
through the kube layer (Kubernetes API operations, shown as their kubectl equivalents); start and
stop reach each pod as files written by an exec into it, through the API server too.
"""

from __future__ import annotations

import os
import re
from typing import TYPE_CHECKING, Any

from failover_drill.config.topology import Topology
from failover_drill.errors import PlatformError
from failover_drill.platforms.kind import api
from failover_drill.platforms.kind.api import kubectl
from failover_drill.platforms.kind.cluster_config import names, on_control_plane
from failover_drill.platforms.kind.commands import ApiStep, KubeFor, Runner, default_kubes
from failover_drill.platforms.kube.workload import IMAGE, NAMESPACE
from failover_drill.platforms.polling import poll

if TYPE_CHECKING:
    from failover_drill.platforms.kube.client import LogStream

CONTROL_DIR = "/run/failover-drill"
WORKER_APP = "failover-drill-traffic"
OWNER_LABEL = "failover-drill.io/owner-pid"  # the drill that started the Job: `recover` keeps a live one's
COMPLETION_INDEX = "batch.kubernetes.io/job-completion-index"  # the Job controller's annotation on each pod
CONTAINER = "worker"


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
        "name": CONTAINER,
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
        kubes: KubeFor | None = None,
    ) -> None:
        self.run = run
        # Where the workers' logs are followed from (a stream, not a step); the kubeconfig's
        # contexts unless given.
        self.kubes = kubes
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
        self.run.run(api.apply(self.ctx, f"start {self.workers} traffic worker(s) as job/{self.name}", [self.job], 2))

    def running(self, timeout_s: float) -> list[str]:
        """The workers' pods, ordered by completion index, once every one is Running."""
        seen = ""
        ready: list[str] = []

        def not_yet() -> str | None:
            nonlocal seen
            seen = self.run.run(job_pods_step(self.ctx, self.name))
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
        state = self.run.run(job_state_step(self.ctx, self.name)).strip()
        raise PlatformError(
            f"the traffic workers of job/{self.name} are not running: "
            f"{' | '.join(seen.strip().splitlines()) or 'no pods'} (the Job: {state or 'unknown'})",
            hint=f"kubectl --context {self.ctx} -n {NAMESPACE} describe job {self.name}",
        )

    def follow(self, worker: str) -> LogStream:
        """The worker's stdout, as the API server streams its container's log (`kubectl logs -f`)."""
        if self.kubes is None:
            self.kubes = default_kubes()
        # A worker waits for its start, then writes for the drill's length: idle at most the Job's life.
        idle_s = float(self.job["spec"]["activeDeadlineSeconds"])
        return self.kubes(self.ctx).follow_log(worker, NAMESPACE, CONTAINER, idle_s=idle_s)

    def _write(self, worker: str, file: str, text: str, ok_to_fail: bool) -> None:
        write = ("python", "-c", "import sys; open(sys.argv[1], 'w').write(sys.argv[2])", f"{CONTROL_DIR}/{file}", text)
        title = f"{worker}: {file} <- {text}"
        self.run.run(api.exec_in(self.ctx, title, NAMESPACE, worker, write, container=CONTAINER, ok_to_fail=ok_to_fail))

    def start(self, worker: str, wall: float) -> None:
        self._write(worker, "start", f"{wall:.6f}", ok_to_fail=False)

    def stop(self, worker: str) -> None:
        self._write(worker, "stop", "stop", ok_to_fail=True)

    def cleanup(self) -> None:
        self.run.run(delete_job_step(self.ctx, self.name))


def job_pods_step(ctx: str, job: str) -> ApiStep:
    """The Job's pods, one `<name> <completion index> <phase>` a line."""

    def call(kube_for: KubeFor, _: str | None) -> str:
        pods = kube_for(ctx).list_objects("v1", "Pod", NAMESPACE, label_selector=f"job-name={job}")
        return "".join(
            f"{p['metadata']['name']} {(p['metadata'].get('annotations') or {}).get(COMPLETION_INDEX, '-')} "
            f"{(p.get('status') or {}).get('phase') or 'Unknown'}\n"
            for p in pods
        )

    fmt = (
        "jsonpath={range .items[*]}{.metadata.name} "
        '{.metadata.annotations.batch\\.kubernetes\\.io/job-completion-index} {.status.phase}{"\\n"}{end}'
    )
    argv = kubectl(ctx, "-n", NAMESPACE, "get", "pods", "-l", f"job-name={job}", "-o", fmt)
    return ApiStep(f"traffic pods of job/{job}", ctx, argv, call, timeout_s=30, ok_to_fail=True)


def job_state(job: dict[str, Any] | None) -> str:
    """What the Job controller says of a Job: its pods by state and its conditions that hold."""
    if job is None:
        return "not found"
    st = job.get("status") or {}
    counts = ", ".join(f"{k} {st.get(k) or 0}" for k in ("active", "ready", "succeeded", "failed"))
    conds = [
        c["type"] + (f" ({c.get('reason')}: {c.get('message')})" if c.get("reason") else "")
        for c in st.get("conditions") or []
        if c.get("status") == "True"
    ]
    return "; ".join([counts, *conds])


def job_state_step(ctx: str, job: str) -> ApiStep:
    def call(kube_for: KubeFor, _: str | None) -> str:
        return job_state(kube_for(ctx).get("batch/v1", "Job", job, NAMESPACE)) + "\n"

    argv = kubectl(ctx, "-n", NAMESPACE, "get", f"job/{job}", "-o", "jsonpath={.status}")
    return ApiStep(f"status of job/{job}", ctx, argv, call, timeout_s=30, ok_to_fail=True)


def traffic_jobs_step(ctx: str, region: str) -> ApiStep:
    """The traffic Jobs in a cluster, one `<name> <owner pid>` a line."""

    def call(kube_for: KubeFor, _: str | None) -> str:
        jobs = kube_for(ctx).list_objects("batch/v1", "Job", NAMESPACE, label_selector=f"app={WORKER_APP}")
        return "".join(
            f"{j['metadata']['name']} {(j['metadata'].get('labels') or {}).get(OWNER_LABEL, '-')}\n" for j in jobs
        )

    fmt = 'jsonpath={range .items[*]}{.metadata.name} {.metadata.labels.failover-drill\\.io/owner-pid}{"\\n"}{end}'
    argv = kubectl(ctx, "-n", NAMESPACE, "get", "jobs", "-l", f"app={WORKER_APP}", "-o", fmt)
    return ApiStep(f"traffic jobs in {region}", ctx, argv, call, timeout_s=30, ok_to_fail=True)


def list_traffic_jobs(topo: Topology, run: Runner) -> list[tuple[str, str, int | None]]:
    """(context, job, owner pid) of every traffic Job in the fleet's clusters."""
    out: list[tuple[str, str, int | None]] = []
    for n in names(topo).values():
        for line in run.run(traffic_jobs_step(n.context, n.region)).splitlines():
            parts = line.split()
            if parts:
                pid = int(parts[1]) if len(parts) > 1 and parts[1].isdigit() else None
                out.append((n.context, parts[0], pid))
    return out


def delete_job_step(ctx: str, name: str) -> ApiStep:
    return api.delete(ctx, f"remove job/{name}", "batch/v1", "Job", NAMESPACE, name)
