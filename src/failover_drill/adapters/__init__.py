"""Adapters at the edge (Chaos Toolkit, Argo Rollouts): they call the same core as the CLI."""
