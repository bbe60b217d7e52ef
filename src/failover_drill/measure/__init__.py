"""Samples into numbers: timeline buckets, failover times, error budget, payment reconciliation."""
