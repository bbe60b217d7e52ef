"""The data plane every platform shares: Envoy config builders, its admin API, its binary."""
