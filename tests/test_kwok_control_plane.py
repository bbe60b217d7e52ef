"""One real region control plane (etcd, kube-apiserver, controller manager, scheduler, kwok) built
from the pinned sources: a Deployment's pods are scheduled to a kwok node and become Ready."""

from __future__ import annotations

import json
import socket
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes import client as k8s
from kubernetes import config as k8s_config

from failover_drill import toolchain
from failover_drill.errors import EXIT_PLATFORM, PortInUse
from failover_drill.platforms.kwok import (
    COMPONENTS,
    ControlPlane,
    ControlPlaneError,
    ControlPlaneSpec,
    Ports,
    find_marked,
)
from tests.control_planes import NEEDS_GO, REGION, until

pytestmark = NEEDS_GO


EVICTION_S = 37  # not upstream's 300: the pods must show the setting, not the default
ZONE = "us-east1-b"


@pytest.fixture(scope="module")
def binaries() -> dict[str, Path]:
    # Builds what is missing: a build failure fails the test, it does not skip it.
    return toolchain.paths(COMPONENTS)


def _spec(tmp: Path, **kw: Any) -> ControlPlaneSpec:
    return ControlPlaneSpec(
        region=REGION, state_dir=tmp, ports=Ports.free(), fleet_id=f"test-{uuid.uuid4().hex[:8]}", **kw
    )


def _alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat[stat.rindex(")") + 2] not in "ZX"


@pytest.fixture(scope="module")
def plane(binaries: dict[str, Path], tmp_path_factory: pytest.TempPathFactory) -> Iterator[ControlPlane]:
    spec = _spec(tmp_path_factory.mktemp("kwok-cp"), pod_cidr="10.244.0.0/16", pod_eviction_s=EVICTION_S)
    cp = ControlPlane(spec, binaries)
    started = time.monotonic()
    cp.start()
    print(f"control plane ready in {time.monotonic() - started:.1f} s")
    try:
        yield cp
    finally:
        cp.stop()


def _api(cp: ControlPlane) -> Any:
    return k8s_config.new_client_from_config(config_file=str(cp.kubeconfig), context=REGION)


def _until(what: str, check: Any, timeout_s: float = 30.0) -> Any:
    return until(what, check, timeout_s)


def test_server_reports_the_pinned_version(plane: ControlPlane) -> None:
    pinned = toolchain.load_pins().components["kube-apiserver"].version
    info = k8s.VersionApi(_api(plane)).get_code()
    assert info.git_version == pinned
    assert info.minor == pinned.split(".")[1]


def test_deployment_runs_on_a_kwok_node(plane: ControlPlane) -> None:
    api = _api(plane)
    core, apps = k8s.CoreV1Api(api), k8s.AppsV1Api(api)
    node = f"kwok-{ZONE}-0"
    core.create_node(
        {
            "apiVersion": "v1",
            "kind": "Node",
            "metadata": {
                "name": node,
                "labels": {
                    "topology.kubernetes.io/region": REGION,
                    "topology.kubernetes.io/zone": ZONE,
                    "type": "kwok",
                },
                "annotations": {"kwok.x-k8s.io/node": "fake"},
            },
        }
    )
    labels = {"app": "payment-gateway"}
    apps.create_namespaced_deployment(
        "default",
        {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {"name": "payment-gateway"},
            "spec": {
                "replicas": 3,
                "selector": {"matchLabels": labels},
                "template": {
                    "metadata": {"labels": labels},
                    "spec": {
                        "nodeSelector": {"topology.kubernetes.io/zone": ZONE},
                        "containers": [{"name": "app", "image": "payment-gateway:drill"}],
                    },
                },
            },
        },
    )

    def node_ready() -> str | None:
        n = core.read_node(node)
        ready = [c.status for c in (n.status.conditions or []) if c.type == "Ready"]
        return n.spec.pod_cidr if ready == ["True"] and n.spec.pod_cidr else None

    pod_cidr = _until("node Ready with a podCIDR", node_ready)
    assert pod_cidr.startswith("10.244.")

    def pods_ready() -> list[Any] | None:
        pods = core.list_namespaced_pod("default", label_selector="app=payment-gateway").items
        ok = [
            p
            for p in pods
            if p.spec.node_name == node
            and p.status.phase == "Running"
            and any(c.type == "Ready" and c.status == "True" for c in p.status.conditions or [])
            and p.status.pod_ip
        ]
        return ok if len(ok) == 3 else None

    pods = _until("3 pods Running and Ready on the kwok node", pods_ready)
    prefix = pod_cidr.rsplit(".", 2)[0] + "."
    assert all(p.status.pod_ip.startswith(prefix) for p in pods), [p.status.pod_ip for p in pods]
    assert len({p.status.pod_ip for p in pods}) == 3
    dep = _until(
        "deployment available",
        lambda: (
            (d := apps.read_namespaced_deployment("payment-gateway", "default")).status.available_replicas == 3 and d
        ),
    )
    assert dep.status.ready_replicas == 3
    # The topology's pod_eviction_s reached the API server: how long a lost zone's pods stay bound
    # to their NotReady node before eviction, on every pod (DefaultTolerationSeconds admission).
    for p in pods:
        waits = {t.key: t.toleration_seconds for t in p.spec.tolerations or [] if t.effect == "NoExecute"}
        assert waits == {"node.kubernetes.io/not-ready": EVICTION_S, "node.kubernetes.io/unreachable": EVICTION_S}


def test_every_process_is_marked_and_logs_to_its_own_file(plane: ControlPlane) -> None:
    marked = {m.label: m.pid for m in find_marked(plane.spec.fleet_id)}
    assert set(marked) == {f"{REGION}/{c}" for c in COMPONENTS}
    for p in plane.processes:
        assert marked[f"{REGION}/{p.component}"] == p.pid
        assert Path(p.log).is_file()
        assert Path(p.log).parent == plane.spec.state_dir / "logs"


def test_a_taken_port_fails_before_anything_starts(binaries: dict[str, Path], tmp_path: Path) -> None:
    spec = _spec(tmp_path)
    with socket.socket() as s:
        s.bind(("127.0.0.1", spec.ports.apiserver))
        s.listen()
        with pytest.raises(PortInUse) as err:
            ControlPlane(spec, binaries).start()
    assert err.value.exit_code == EXIT_PLATFORM
    assert str(spec.ports.apiserver) in str(err.value)
    assert find_marked(spec.fleet_id) == []


def test_an_api_server_that_never_becomes_ready_is_named_and_everything_stops(
    binaries: dict[str, Path], tmp_path: Path
) -> None:
    hung = tmp_path / "hung-apiserver"
    hung.write_text('#!/bin/sh\necho "serving nothing on $*"\nexec sleep 600\n')
    hung.chmod(0o755)
    spec = _spec(tmp_path / "state", ready_timeout_s=3.0)
    cp = ControlPlane(spec, {**binaries, "kube-apiserver": hung})
    with pytest.raises(ControlPlaneError) as err:
        cp.start()
    text = str(err.value)
    assert err.value.exit_code == EXIT_PLATFORM
    assert "kube-apiserver did not become ready within 3 s" in text
    assert "serving nothing on --etcd-servers" in text  # the component's own last log lines
    assert find_marked(spec.fleet_id) == []


def test_upstream_crds_from_the_pins_are_established(plane: ControlPlane) -> None:
    """The CRDs taken from the pinned modules are valid for the pinned API server."""
    ext = k8s.ApiextensionsV1Api(_api(plane))
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    names = []
    for path in toolchain.crd_files():
        for doc in yaml.load_all(path.read_text(), Loader=loader):
            if doc:
                ext.create_custom_resource_definition(doc, _preload_content=False)
                names.append(doc["metadata"]["name"])
    assert "rollouts.argoproj.io" in names and "destinationrules.networking.istio.io" in names

    def established() -> bool:
        items = json.loads(ext.list_custom_resource_definition(_preload_content=False).data)["items"]
        ok = {
            i["metadata"]["name"]
            for i in items
            if any(c["type"] == "Established" and c["status"] == "True" for c in i["status"].get("conditions") or [])
        }
        return set(names) <= ok

    _until("every CRD Established", established)


def test_stop_leaves_no_process(plane: ControlPlane) -> None:
    """Runs last against the shared control plane (its fixture's own stop is then a no-op)."""
    pids = [p.pid for p in plane.processes]
    assert len(pids) == len(COMPONENTS) and all(_alive(pid) for pid in pids)
    assert plane.stop() == []
    assert not [pid for pid in pids if _alive(pid)]
    assert find_marked(plane.spec.fleet_id) == []
