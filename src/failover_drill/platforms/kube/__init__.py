"""The kube layer: the only package that imports the kubernetes client."""
