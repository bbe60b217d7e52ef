"""The manifests both platforms read are valid Kubernetes: core kinds against the API schemas
(kubernetes-validate), custom resources against the official CRD schemas, taken from the
pinned upstream modules' sources (failover_drill.toolchain: `go mod download` into the module
cache, nothing copied into the repository). Without the go command those tests skip."""

from __future__ import annotations

import functools
import shutil
from typing import Any

import jsonschema
import kubernetes_validate
import pytest
import yaml

from failover_drill import toolchain
from failover_drill.config.manifests import load_objects
from failover_drill.config.topology import MESH_PROFILES
from tests.conftest import MANIFESTS_DIR

HAVE_GO = shutil.which("go") is not None
# For tests that validate custom resources: the CRDs come from the pinned modules, through go.
needs_crds = pytest.mark.skipif(
    not HAVE_GO, reason="the go command is not on PATH: the CRDs are read from the pinned modules' sources"
)
CORE_KINDS = {"Deployment", "Service", "Namespace"}
# GKE's networking.gke.io / cloud.google.com kinds have no public CRD YAML.
UNPUBLISHED = {"MultiClusterService", "BackendConfig"}


@functools.cache
def _crds() -> dict[tuple[str, str], dict[str, Any]]:
    """(group, kind) -> CustomResourceDefinition, from every CRD file the toolchain pins (Istio's
    is one multi-document file of MBs: parsed once per run, with libyaml where it is built in)."""
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    out: dict[tuple[str, str], dict[str, Any]] = {}
    for path in toolchain.crd_files():
        for doc in yaml.load_all(path.read_text(), Loader=loader):
            if doc and doc.get("kind") == "CustomResourceDefinition":
                out[(doc["spec"]["group"], doc["spec"]["names"]["kind"])] = doc
    return out


def crd_schema(api_version: str, kind: str) -> dict[str, Any] | None:
    group, _, version = api_version.partition("/")
    crd = _crds().get((group, kind))
    if crd is None:
        return None
    for v in crd["spec"]["versions"]:
        if v["name"] == version:
            schema: dict[str, Any] = v["schema"]["openAPIV3Schema"]
            return schema
    raise AssertionError(f"{kind} {api_version}: version {version} is not served by the CRD")


def _strip_k8s_extensions(node: Any) -> Any:
    """JSON Schema validators do not know x-kubernetes-* keywords (CEL rules included)."""
    if isinstance(node, dict):
        return {k: _strip_k8s_extensions(v) for k, v in node.items() if not k.startswith("x-kubernetes-")}
    if isinstance(node, list):
        return [_strip_k8s_extensions(v) for v in node]
    return node


@functools.cache
def _stripped(api_version: str, kind: str) -> dict[str, Any]:
    schema = crd_schema(api_version, kind)
    assert schema is not None
    out: dict[str, Any] = _strip_k8s_extensions(schema)
    return out


def validate_object(obj: dict[str, Any]) -> None:
    """Core kinds against the Kubernetes API schema, custom resources against their official CRD."""
    kind = obj["kind"]
    if obj["apiVersion"] in ("v1", "apps/v1", "batch/v1"):
        kubernetes_validate.validate(obj, "1.30", strict=True)
    elif kind in UNPUBLISHED:
        assert obj["apiVersion"] in ("networking.gke.io/v1", "cloud.google.com/v1")
    else:
        schema = crd_schema(obj["apiVersion"], kind)
        assert schema is not None, f"no CRD for {kind} {obj['apiVersion']} among the pinned CRDs (toolchain/pins.toml)"
        jsonschema.validate(obj, _stripped(obj["apiVersion"], kind))


@needs_crds
@pytest.mark.parametrize("profile", MESH_PROFILES)
def test_every_manifest_validates(profile: str) -> None:
    objects = load_objects(MANIFESTS_DIR, profile)
    for obj in objects:
        validate_object(obj)
    kinds = {o["kind"] for o in objects}
    assert kinds >= CORE_KINDS
    assert {"DestinationRule", "ServiceExport"} <= kinds


@needs_crds
def test_a_broken_destination_rule_is_caught() -> None:
    schema = crd_schema("networking.istio.io/v1", "DestinationRule")
    assert schema is not None
    bad = {
        "apiVersion": "networking.istio.io/v1",
        "kind": "DestinationRule",
        "metadata": {"name": "x"},
        "spec": {"host": "x", "trafficPolicy": {"outlierDetection": {"consecutive5xxErrors": "five"}}},
    }
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(bad, _strip_k8s_extensions(schema))
