"""Traffic that originates inside the users' region (traffic.origin: in-region): the worker that
runs in a Job's pod, the pool that starts and follows such workers, and the kind Job around them.

The workers, their traffic and the payment-gateway replica they pay are real processes. The
Kubernetes API is behind a process boundary this machine cannot cross here: the kube layer is a
stand-in that keeps the applied Job, lists its pods and, for a pod's log, runs the pod's container
command (so the log is the worker's real stdout); an exec into a pod (the start and stop files)
runs its command here, with the pod's control directory mapped to one of the test's. The same
Job's API operations against a real API server are in test_kind_kube.py, and Kube.exec's own in
test_kube_exec.py."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest

from failover_drill.config.scenario import TrafficSpec
from failover_drill.errors import DrillError
from failover_drill.platforms.kind.commands import SubprocessRunner
from failover_drill.platforms.kind.traffic_jobs import CONTROL_DIR, KindTrafficJobs, job_name
from failover_drill.platforms.kube.client import ExecResult
from failover_drill.traffic.remote_pool import RemoteWorkerPool
from failover_drill.traffic.samples import Sample
from tests.conftest import lone_replica, processes_under, run_cli, topology
from tests.test_manifests import validate_object


@pytest.fixture(scope="module")
def replica(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with lone_replica(tmp_path_factory.mktemp("replica"), "us-east1", "us-east1-a") as url:
        yield url


def test_a_worker_waits_for_its_start_time_and_streams_its_samples(replica: str, tmp_path: Path) -> None:
    spec = TrafficSpec(rate_rps=200)
    proc = subprocess.Popen(
        [sys.executable, "-m", "failover_drill.traffic.remote_worker", "--url", replica, "--region", "us-east1",
         "--duration", "1.5", "--spec", spec.model_dump_json(), "--workers", "2", "--index", "1",
         "--key-prefix", "w", "--control-dir", str(tmp_path / "ctl")],
        stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    assert proc.stdout is not None
    assert json.loads(proc.stdout.readline()) == {"t": "ready", "worker": 1}
    time.sleep(0.5)  # nothing is sent before the start file says when
    start = time.time() + 0.3
    (tmp_path / "ctl" / "start").write_text(f"{start:.6f}")
    records = [json.loads(line) for line in proc.stdout]
    assert proc.wait(timeout=30) == 0
    done = records.pop()
    assert done["t"] == "done" and done["started"] is True
    samples = [Sample.from_json(r) for r in records]
    # worker 1 of 2 at 200 req/s sends the odd arrivals: 100 req/s for 1.5 s
    assert len(samples) == done["stats"]["completed"] == 150
    assert sorted(s.seq for s in samples) == list(range(1, 300, 2))
    assert all(s.ok and s.acked and s.region == "us-east1" for s in samples)
    assert max(s.lag_ms for s in samples) < 100  # sent on its own schedule from the start instant
    assert all(s.key == f"w-{s.seq}" for s in samples)


def test_a_worker_that_is_told_to_stop_before_starting_sends_nothing(replica: str, tmp_path: Path) -> None:
    ctl = tmp_path / "ctl"
    proc = subprocess.Popen(
        [sys.executable, "-m", "failover_drill.traffic.remote_worker", "--url", replica, "--region", "us-east1",
         "--duration", "60", "--spec", TrafficSpec().model_dump_json(), "--key-prefix", "w",
         "--control-dir", str(ctl)],
        stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    assert proc.stdout is not None
    assert json.loads(proc.stdout.readline())["t"] == "ready"
    (ctl / "stop").write_text("stop")
    records = [json.loads(line) for line in proc.stdout]
    assert proc.wait(timeout=10) == 0
    assert records == [{"t": "done", "worker": 0, "stats": records[0]["stats"], "started": False}]
    assert records[0]["stats"]["sent"] == 0


class FakeLog:
    """A pod's log as the stand-in kube layer streams it: the pod's container command, run here."""

    def __init__(self, argv: list[str], env: dict[str, str]) -> None:
        self.argv, self.env = argv, env
        self.proc: subprocess.Popen[str] | None = None

    def __iter__(self) -> Iterator[str]:
        self.proc = subprocess.Popen(self.argv, env=self.env, stdout=subprocess.PIPE, text=True)
        assert self.proc.stdout is not None
        yield from self.proc.stdout
        self.proc.wait()

    def close(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


class FakeKube:
    """Stand-in for the kube layer against the kind clusters: enough of apply / list / get /
    delete / follow_log / exec for a traffic Job, which it keeps in one context."""

    def __init__(self, state: Path) -> None:
        self.state = state
        self.job: dict[str, Any] | None = None
        self.ctx = ""
        self.deleted: list[str] = []
        self.context = ""
        self.execs: list[tuple[str, str | None, tuple[str, ...]]] = []

    def __call__(self, context: str) -> FakeKube:
        self.context = context
        return self

    def apply(self, objects: list[dict[str, Any]], namespace: str | None = None) -> None:
        (self.job,) = objects
        self.ctx = self.context

    def _pods(self) -> list[tuple[str, int]]:
        assert self.job is not None
        return [(f"{self.job['metadata']['name']}-{k}-x7k2p", k) for k in range(self.job["spec"]["completions"])]

    def list_objects(
        self, api_version: str, kind: str, namespace: str | None = None, label_selector: str = ""
    ) -> list[dict[str, Any]]:
        if self.job is None or self.ctx != self.context or self.job["metadata"]["name"] in self.deleted:
            return []
        if kind == "Job":
            return [self.job]
        return [
            {
                "metadata": {"name": name, "annotations": {"batch.kubernetes.io/job-completion-index": str(k)}},
                "status": {"phase": "Running"},
            }
            for name, k in self._pods()
        ]

    def get(self, api_version: str, kind: str, name: str, namespace: str | None = None) -> dict[str, Any] | None:
        return self.job if self.job is not None and self.ctx == self.context else None

    def delete(
        self, api_version: str, kind: str, name: str, namespace: str | None = None, propagation: str = ""
    ) -> bool:
        assert (kind, propagation) == ("Job", "Background")
        self.deleted.append(name)
        return True

    def follow_log(self, name: str, namespace: str, container: str | None = None, idle_s: float = 3600.0) -> FakeLog:
        assert self.job is not None
        k = dict(self._pods())[name]
        c = self.job["spec"]["template"]["spec"]["containers"][0]
        assert container == c["name"]
        argv = [a.replace(CONTROL_DIR, str(self.state / name)) for a in c["command"] + c["args"]]
        argv[0] = sys.executable
        return FakeLog(argv, {**os.environ, "JOB_COMPLETION_INDEX": str(k)})

    def exec(
        self, pod: str, namespace: str, command: Sequence[str], *, container: str | None = None, timeout_s: float = 60.0
    ) -> ExecResult:
        """The command run here, as the pod's container would run it, its control dir the pod's own."""
        assert self.ctx == self.context
        self.execs.append((pod, container, tuple(command)))
        argv = [a.replace(CONTROL_DIR, str(self.state / pod)) for a in command]
        argv[0] = sys.executable
        (self.state / pod).mkdir(exist_ok=True)
        done = subprocess.run(argv, capture_output=True, text=True, timeout=timeout_s, check=False)
        return ExecResult(done.returncode, done.stdout, done.stderr)


@pytest.fixture
def fake_kube(tmp_path: Path) -> FakeKube:
    state = tmp_path / "kube"
    state.mkdir()
    return FakeKube(state)


def test_the_traffic_job_validates_and_keeps_the_users_out_of_the_zones() -> None:
    jobs = KindTrafficJobs(
        topology("istio"), SubprocessRunner(), region="eu-west1", url="http://172.18.0.1:40000",
        spec_json=TrafficSpec(rate_rps=900, workers=3).model_dump_json(), duration_s=40, workers=3,
        key_prefix="20261127T230000Z-zone-loss-eu-west1-ab12",
    )  # fmt: skip
    validate_object(jobs.job)
    spec = jobs.job["spec"]
    assert (spec["completionMode"], spec["completions"], spec["parallelism"], spec["backoffLimit"]) == (
        "Indexed", 3, 3, 0,
    )  # fmt: skip
    pod = spec["template"]["spec"]
    # on the control-plane node: in the region, in no zone, so a zone loss leaves the users standing
    assert pod["nodeSelector"] == {"node-role.kubernetes.io/control-plane": ""}
    assert spec["template"]["metadata"]["labels"]["sidecar.istio.io/inject"] == "false"
    args = pod["containers"][0]["args"]
    assert args[args.index("--url") + 1] == "http://172.18.0.1:40000"
    assert args[args.index("--region") + 1] == "eu-west1"
    assert jobs.ctx == "kind-fd-eu-west1"
    assert len(jobs.name) <= 63 and jobs.name == job_name("20261127T230000Z-zone-loss-eu-west1-ab12")


@pytest.mark.slow
def test_a_traffic_job_sends_from_the_region_and_its_samples_land_on_the_drills_axis(
    replica: str, fake_kube: FakeKube
) -> None:
    spec = TrafficSpec(rate_rps=300, workers=2)
    jobs = KindTrafficJobs(
        topology("istio"), SubprocessRunner(kubes=fake_kube), region="us-east1", url=replica,
        spec_json=spec.model_dump_json(), duration_s=2.0, workers=2, key_prefix="run-7", kubes=fake_kube,
    )  # fmt: skip
    pool = RemoteWorkerPool(jobs)
    samples: list[Sample] = []
    try:
        pool.wait_ready(timeout_s=60)
        origin = time.monotonic()  # the drill anchors right after wait_ready returns
        pool.go(origin)
        stats = asyncio.run(pool.collect(samples.append))
    finally:
        pool.close()
    assert abs(pool.shift_s) < 0.05
    assert len(samples) == stats.completed == 600 and not pool.lost
    assert sorted(s.seq for s in samples) == list(range(600))  # worker k sends arrivals k, k+2, ...
    assert all(s.ok and s.key == f"run-7-{s.seq}" for s in samples)
    # scheduled times are the drill's: 300 req/s from its origin, whichever pod sent them
    by_seq = sorted(samples, key=lambda s: s.seq)
    assert all(abs(s.sched - s.seq / 300) < 0.06 for s in by_seq)
    assert fake_kube.job is not None and fake_kube.job["metadata"]["name"] == jobs.name
    assert fake_kube.ctx == "kind-fd-us-east1"
    # one start per pod, written by an exec into its worker container
    assert sorted((pod, c, cmd[-2]) for pod, c, cmd in fake_kube.execs) == [
        (pod, "worker", f"{CONTROL_DIR}/start") for pod in sorted(pool.ids)
    ]
    assert all((fake_kube.state / pod / "start").read_text() for pod in pool.ids)
    assert fake_kube.deleted == [jobs.name]  # the Job is removed after
    assert not processes_under(fake_kube.state)


def test_workers_that_never_get_ready_fail_with_the_job_named_and_are_removed(fake_kube: FakeKube) -> None:
    jobs = KindTrafficJobs(
        topology("istio"), SubprocessRunner(kubes=fake_kube), region="us-east1", url="http://127.0.0.1:9",
        spec_json="not json", duration_s=2.0, workers=1, key_prefix="bad", kubes=fake_kube,
    )  # fmt: skip
    pool = RemoteWorkerPool(jobs)
    with pytest.raises(DrillError, match="ended before it was ready") as err:
        try:
            pool.wait_ready(timeout_s=30)
        finally:
            pool.close()
    assert "job/fd-traffic-bad" in (err.value.hint or "")
    assert fake_kube.deleted == ["fd-traffic-bad"]


def test_in_region_traffic_is_refused_where_it_cannot_mean_anything(tmp_path: Path) -> None:
    out = run_cli("drill", "--region", "us-east1", "--set", "traffic.origin=in-region", state=tmp_path)
    assert out.returncode == 2 and "traffic.origin" in out.stderr and "--platform kind" in out.stderr
    assert not (tmp_path / "sandbox").exists() or not processes_under(tmp_path)
    out = run_cli(
        "drill", "--platform", "kind", "--region", "us-east1", "--fault", "region-loss", "--target", "us-east1",
        "--set", "traffic.origin=in-region", state=tmp_path,
    )  # fmt: skip
    assert out.returncode == 2 and "take the users" in out.stderr
