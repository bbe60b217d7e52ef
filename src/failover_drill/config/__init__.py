"""Validated inputs: topology, scenario, SLO and the Kubernetes manifests that define the service."""
