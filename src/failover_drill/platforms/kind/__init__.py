"""kind clusters per region (needs Docker): Cilium Cluster Mesh or Istio multi-primary."""
