"""The manifests both platforms read are valid Kubernetes: core kinds against the API schemas
(kubernetes-validate), custom resources against the official CRD schemas in ../shared/crds."""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
import pytest
import yaml

from failover_drill.config.manifests import load_objects
from failover_drill.config.topology import MESH_PROFILES
from tests.conftest import MANIFESTS_DIR, ROOT

CRDS = ROOT.parent / "shared" / "crds"
CORE_KINDS = {"Deployment", "Service", "Namespace"}
# GKE's networking.gke.io / cloud.google.com kinds have no public CRD YAML (shared/crds/SOURCES.md).
UNPUBLISHED = {"MultiClusterService", "BackendConfig"}


@functools.cache
def _crd(path: Path) -> dict[str, Any]:
    # The CRDs are large (Istio's are MBs): parsed once per run, with libyaml where it is built in.
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    crd: dict[str, Any] = yaml.load(path.read_text(), Loader=loader)
    return crd


def crd_schema(api_version: str, kind: str) -> dict[str, Any] | None:
    group, _, version = api_version.partition("/")
    for f in sorted(CRDS.glob(f"{group}_*.yaml")):
        crd = _crd(f)
        if crd["spec"]["names"]["kind"] != kind:
            continue
        for v in crd["spec"]["versions"]:
            if v["name"] == version:
                schema: dict[str, Any] = v["schema"]["openAPIV3Schema"]
                return schema
        raise AssertionError(f"{kind} {api_version}: version {version} is not served by the CRD")
    return None


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
        assert schema is not None, f"no CRD for {kind} {obj['apiVersion']} in {CRDS}"
        jsonschema.validate(obj, _stripped(obj["apiVersion"], kind))


@pytest.mark.skipif(not CRDS.is_dir(), reason="../shared/crds is not beside this checkout")
@pytest.mark.parametrize("profile", MESH_PROFILES)
def test_every_manifest_validates(profile: str) -> None:
    objects = load_objects(MANIFESTS_DIR, profile)
    for obj in objects:
        validate_object(obj)
    kinds = {o["kind"] for o in objects}
    assert kinds >= CORE_KINDS
    assert {"DestinationRule", "ServiceExport"} <= kinds


def test_a_broken_destination_rule_is_caught() -> None:
    schema = crd_schema("networking.istio.io/v1", "DestinationRule")
    if schema is None:
        pytest.skip("../shared/crds is not beside this checkout")
    bad = {
        "apiVersion": "networking.istio.io/v1",
        "kind": "DestinationRule",
        "metadata": {"name": "x"},
        "spec": {"host": "x", "trafficPolicy": {"outlierDetection": {"consecutive5xxErrors": "five"}}},
    }
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(bad, _strip_k8s_extensions(schema))
