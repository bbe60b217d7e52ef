"""Kube.exec (the kube layer's `kubectl exec`) against a real API server.

One region's real control plane from the kwok platform's pieces (etcd, kube-apiserver,
controller manager, scheduler, built from the pinned sources) with kwok playing one node and
serving the kubelet API's exec for it (ControlPlaneSpec.kwok_serves_exec: a ClusterExec for every
pod, the node's address and kubelet port kwok's own, as kwokctl sets it up). A command sent
through Kube.exec goes the whole real way: the `kubernetes` client's websocket to the API server's
pods/exec, the API server's stream to the node's kubelet endpoint over TLS, kwok's remotecommand
server (k8s.io/cri-streaming, the kubelet's own), and back on the stdout, stderr and error channels.

kwok runs an exec as a local process on this host, in its working directory, not inside the pod
(there is no container): that is enough to prove the kube layer and the API server's exec path,
which is what the kind platform's steps take to its pods. One quirk of kwok v0.8 (the pinned
version) shows here: it reports a non-zero exit as an InternalError whose message ends
"exit status N" rather than as NonZeroExitCode, and Kube.exec reads the code from there.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from failover_drill.errors import PlatformError
from failover_drill.platforms.kind import api
from failover_drill.platforms.kind.commands import run_step
from failover_drill.platforms.kube.client import Kube, KubeContexts
from failover_drill.platforms.kwok import ControlPlane
from tests.control_planes import NEEDS_GO, REGION, started_plane, until

pytestmark = NEEDS_GO

NS = "default"
NODE = "kwok-exec-0"


def _pod(name: str, **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "namespace": NS},
        "spec": {"containers": [{"name": "app", "image": "payment-gateway:drill"}], **spec},
    }


@pytest.fixture(scope="module")
def plane(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ControlPlane]:
    yield from started_plane(tmp_path_factory, "kwok-exec", kwok_serves_exec=True)


@pytest.fixture(scope="module")
def kube(plane: ControlPlane) -> Iterator[Kube]:
    k = Kube(plane.kubeconfig, REGION)
    k.apply(
        [
            {
                "apiVersion": "v1",
                "kind": "Node",
                "metadata": {"name": NODE, "annotations": {"kwok.x-k8s.io/node": "fake"}},
            },
            _pod("app", nodeName=NODE),
            # matches no node: never scheduled, so there is no kubelet to exec through
            _pod("pending", nodeSelector={"no-such": "node"}),
        ]
    )

    def running() -> bool:
        pods = {p["metadata"]["name"]: p for p in k.pods(NS)}
        return (pods.get("app", {}).get("status") or {}).get("phase") == "Running"

    until("kwok runs the pod", running)
    # the node as kwok registered it: the address and kubelet port the API server dials for exec
    (node,) = [n for n in k.nodes() if n["metadata"]["name"] == NODE]
    assert {"type": "InternalIP", "address": "127.0.0.1"} in node["status"]["addresses"]
    assert node["status"]["daemonEndpoints"]["kubeletEndpoint"]["Port"] == plane.spec.ports.kwok
    try:
        yield k
    finally:
        k.close()


def test_exec_returns_stdout_stderr_and_the_exit_code(kube: Kube, plane: ControlPlane) -> None:
    done = kube.exec("app", NS, ["sh", "-c", "echo out; echo err >&2; pwd"], container="app")
    # run by kwok on this host, in its working directory (the control plane's state dir)
    assert (done.exit_code, done.stdout, done.stderr) == (0, f"out\n{plane.dir}\n", "err\n")
    failed = kube.exec("app", NS, ["sh", "-c", "echo partial; echo 'it broke' >&2; exit 3"])
    assert (failed.exit_code, failed.stdout, failed.stderr) == (3, "partial\n", "it broke\n")
    # output larger than a websocket frame, and characters split across frames, come back whole
    big = kube.exec("app", NS, ["sh", "-c", "i=0; while [ $i -lt 40000 ]; do echo héllo; i=$((i+1)); done"])
    assert big.exit_code == 0 and big.stdout == "héllo\n" * 40000


def test_a_missing_pod_or_container_is_named(kube: Kube) -> None:
    with pytest.raises(PlatformError) as err:
        kube.exec("nope", NS, ["true"])
    said = str(err.value)
    assert f"exec in pod {NS}/nope" in said and 'pods "nope" not found' in said and "HTTP 404" in said
    with pytest.raises(PlatformError) as err:
        kube.exec("app", NS, ["true"], container="sidecar")
    said = str(err.value)
    assert f"exec in pod {NS}/app, container sidecar" in said and "container sidecar is not valid" in said


def test_an_exec_the_api_server_or_the_kubelet_cannot_do_is_named(kube: Kube) -> None:
    # a pod with no node: refused by the API server
    with pytest.raises(PlatformError) as err:
        kube.exec("pending", NS, ["true"])
    assert f"exec in pod {NS}/pending" in str(err.value) and "does not have a host assigned" in str(err.value)
    # a command the kubelet cannot start: no exit code to report, so no ExecResult
    with pytest.raises(PlatformError) as err:
        kube.exec("app", NS, ["no-such-command-here"])
    assert "did not run to an exit" in str(err.value) and "no-such-command-here" in str(err.value)


def test_an_exec_that_does_not_finish_in_time_is_named_and_closed(kube: Kube) -> None:
    started = time.monotonic()
    with pytest.raises(PlatformError) as err:
        kube.exec("app", NS, ["sleep", "20"], timeout_s=2)
    assert time.monotonic() - started < 8
    assert f"exec in pod {NS}/app" in str(err.value) and "`sleep 20` did not finish within 2 s" in str(err.value)
    # the client goes on working
    assert kube.exec("app", NS, ["true"]).exit_code == 0


def test_exec_leaves_the_shared_client_to_other_threads(kube: Kube) -> None:
    """kubernetes.stream swaps its client's transport while it connects: Kube.exec uses a client of
    its own, so reads made meanwhile from other threads still get plain HTTP answers."""
    errors: list[BaseException] = []
    stop = threading.Event()

    def read() -> None:
        while not stop.is_set():
            try:
                assert any(p["metadata"]["name"] == "app" for p in kube.pods(NS))
            except BaseException as exc:
                errors.append(exc)
                return

    reader = threading.Thread(target=read)
    reader.start()
    try:
        for k in range(10):
            assert kube.exec("app", NS, ["echo", str(k)]).stdout == f"{k}\n"
    finally:
        stop.set()
        reader.join(timeout=30)
    assert errors == []


def test_the_kind_platforms_exec_step_runs_through_the_api_server(plane: ControlPlane) -> None:
    """The step kind's faults, ledgers and traffic workers use (api.exec_in), run through the kube
    layer against this API server: a pod as kind lists it (`pod/<name>`), its stdout returned, a
    non-zero exit a failure naming the code and stderr."""
    kubes = KubeContexts(Path(plane.kubeconfig))
    try:
        step = api.exec_in(REGION, "say hello", NS, "pod/app", ["sh", "-c", "echo hello"], container="app")
        assert step.shell() == f"kubectl --context {REGION} -n {NS} exec pod/app -c app -- sh -c 'echo hello'"
        assert run_step(step, kubes) == "hello\n"
        failing = api.exec_in(REGION, "fail", NS, "pod/app", ["sh", "-c", "echo nope >&2; exit 7"])
        with pytest.raises(PlatformError) as err:
            run_step(failing, kubes)
        assert "exited with code 7: nope" in str(err.value) and f"pod {NS}/app" in str(err.value)
    finally:
        kubes.close()
