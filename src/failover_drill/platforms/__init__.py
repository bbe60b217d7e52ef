"""Where the fleet lives: sandbox (local processes), kind (Docker), kube (existing clusters)."""
