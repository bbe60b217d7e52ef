"""The service under test: the payment-gateway replica and its ledger."""
