"""The embedded default platform: real Envoy and payment-gateway processes on 127.0.0.1."""
