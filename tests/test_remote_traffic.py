"""Traffic that originates inside the users' region (traffic.origin: in-region): the worker that
runs in a Job's pod, the pool that starts and follows such workers, and the kind Job around them.

The workers, their traffic and the payment-gateway replica they pay are real processes. The
Kubernetes API is behind a process boundary this machine cannot cross: `kubectl` is a stand-in
script that keeps the applied Job, lists its pods, runs a pod's container command for
`kubectl logs -f` (so the log is the worker's real stdout), and writes files for `kubectl exec`."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from failover_drill.config.scenario import TrafficSpec
from failover_drill.errors import DrillError
from failover_drill.platforms.kind.commands import SubprocessRunner
from failover_drill.platforms.kind.traffic_jobs import CONTROL_DIR, KindTrafficJobs, job_name
from failover_drill.platforms.registry import platform_dir
from failover_drill.platforms.state_file import StateFile
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


FAKE_KUBECTL = textwrap.dedent(
    """\
    #!{python}
    # Stand-in for kubectl against one cluster: enough of apply/get/logs/exec/delete for a traffic Job.
    import json, os, sys, yaml
    from pathlib import Path
    state = Path(os.environ["FAKE_KUBE"])
    args = sys.argv[1:]
    ctx = args[args.index("--context") + 1]
    verb = next(a for a in args if a in ("apply", "get", "logs", "exec", "delete"))
    with open(state / "calls.jsonl", "a") as f:
        f.write(json.dumps(args) + "\\n")
    job_file = state / "job.yaml"

    def job():
        return yaml.safe_load(job_file.read_text())

    def pods():
        j = job()
        return [(f"{{j['metadata']['name']}}-{{k}}-x7k2p", k) for k in range(j["spec"]["completions"])]

    if verb == "apply":
        job_file.write_text(sys.stdin.read())
        (state / "ctx").write_text(ctx)
    elif verb == "get" and "jobs" in args:
        if job_file.exists() and (state / "ctx").read_text() == ctx:
            j = job()
            print(j["metadata"]["name"], j["metadata"]["labels"]["failover-drill.io/owner-pid"])
    elif verb == "get":
        for name, k in pods():
            print(name, k, "Running")
    elif verb == "logs":
        pod = args[-1].removeprefix("pod/")
        k = dict(pods())[pod]
        c = job()["spec"]["template"]["spec"]["containers"][0]
        argv = [a.replace("{control}", str(state / pod)) for a in c["command"] + c["args"]]
        argv[0] = sys.executable
        os.execve(sys.executable, argv, {{**os.environ, "JOB_COMPLETION_INDEX": str(k)}})
    elif verb == "exec":
        pod = args[args.index("exec") + 1]
        path, text = args[-2], args[-1]
        (state / pod / Path(path).name).write_text(text)
    elif verb == "delete":
        with open(state / "deleted", "a") as f:
            f.write(args[args.index("job") + 1] + "\\n")
    """
)


@pytest.fixture
def fake_kubectl(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    bin_dir, state = tmp_path / "bin", tmp_path / "kube"
    bin_dir.mkdir()
    state.mkdir()
    script = bin_dir / "kubectl"
    script.write_text(FAKE_KUBECTL.format(python=sys.executable, control=CONTROL_DIR))
    script.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setenv("FAKE_KUBE", str(state))
    return state


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
    replica: str, fake_kubectl: Path
) -> None:
    spec = TrafficSpec(rate_rps=300, workers=2)
    jobs = KindTrafficJobs(
        topology("istio"), SubprocessRunner(), region="us-east1", url=replica, spec_json=spec.model_dump_json(),
        duration_s=2.0, workers=2, key_prefix="run-7",
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
    applied = yaml.safe_load((fake_kubectl / "job.yaml").read_text())
    assert applied["metadata"]["name"] == jobs.name
    calls = [json.loads(line) for line in (fake_kubectl / "calls.jsonl").read_text().splitlines()]
    assert sum("exec" in c for c in calls) == 2  # one start per pod
    assert (fake_kubectl / "deleted").read_text().split() == [jobs.name]  # the Job is removed after
    assert not processes_under(fake_kubectl)


def test_workers_that_never_get_ready_fail_with_the_job_named_and_are_removed(fake_kubectl: Path) -> None:
    jobs = KindTrafficJobs(
        topology("istio"), SubprocessRunner(), region="us-east1", url="http://127.0.0.1:9",
        spec_json="not json", duration_s=2.0, workers=1, key_prefix="bad",
    )  # fmt: skip
    pool = RemoteWorkerPool(jobs)
    with pytest.raises(DrillError, match="ended before it was ready") as err:
        try:
            pool.wait_ready(timeout_s=30)
        finally:
            pool.close()
    assert "job/fd-traffic-bad" in (err.value.hint or "")
    assert (fake_kubectl / "deleted").read_text().split() == ["fd-traffic-bad"]


def test_in_region_traffic_is_refused_where_it_cannot_mean_anything(tmp_path: Path) -> None:
    out = run_cli("drill", "--region", "us-east1", "--set", "traffic.origin=in-region", state=tmp_path)
    assert out.returncode == 2 and "traffic.origin" in out.stderr and "--platform kind" in out.stderr
    assert not (tmp_path / "sandbox").exists() or not processes_under(tmp_path)
    out = run_cli(
        "drill", "--platform", "kind", "--region", "us-east1", "--fault", "region-loss", "--target", "us-east1",
        "--set", "traffic.origin=in-region", state=tmp_path,
    )  # fmt: skip
    assert out.returncode == 2 and "take the users" in out.stderr


NO_DOCKER_DAEMON = "#!/bin/sh\necho 'Cannot connect to the Docker daemon at unix:///var/run/docker.sock.' >&2\nexit 1\n"


def test_recover_removes_the_traffic_job_of_a_drill_that_died(fake_kubectl: Path, tmp_path: Path) -> None:
    """kubectl and docker are stand-ins (no Docker engine here): docker answers as a machine whose
    daemon is down, so the node containers cannot be checked. recover says so and exits 3, and still
    removes the traffic job of the drill that died: one part failing stops none of the others."""
    docker = tmp_path / "bin" / "docker"
    docker.write_text(NO_DOCKER_DAEMON)
    docker.chmod(0o755)
    state = tmp_path / "state"
    StateFile(platform_dir(state, "kind"), "kind").save({"mesh": "istio", "topology_source": None})
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    for owner, removed in ((os.getpid(), False), (dead.pid, True)):
        KindTrafficJobs(
            topology("istio"), SubprocessRunner(), region="eu-west1", url="http://x", spec_json="{}",
            duration_s=60, workers=1, key_prefix=f"owner-{owner}", owner_pid=owner,
        ).launch()  # fmt: skip
        out = run_cli("recover", state=state)
        assert out.returncode == 3 and "Docker daemon" in out.stderr, out.stderr
        assert "list the kind node containers failed" in out.stderr
        deleted = (fake_kubectl / "deleted").read_text().split() if (fake_kubectl / "deleted").exists() else []
        assert (f"fd-traffic-owner-{owner}" in deleted) is removed
        assert ("removed traffic job kind-fd-eu-west1/fd-traffic-owner-" in out.stdout) is removed
