"""The fault catalogue (what can be injected, validated before anything runs) and the ledger
that makes every injected fault revertible, even after a crash."""
