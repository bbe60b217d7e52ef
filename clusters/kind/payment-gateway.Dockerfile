# The payment-gateway replica the kind platform runs: the same ASGI app as the sandbox's replicas.
# Built by `failover-drill up --platform kind` from the repository root and loaded with `kind load`.
FROM python:3.11-slim
WORKDIR /src
COPY pyproject.toml README.md ./
COPY src ./src
# Only what a replica imports: the app, its ledger, uvicorn. (The package's own dependencies are for
# the drill on the host.)
RUN pip install --no-cache-dir --no-deps . \
 && pip install --no-cache-dir "uvicorn>=0.30" "httptools>=0.6" "uvloop>=0.19"
USER 65532
ENTRYPOINT ["python", "-m", "failover_drill.platforms.sandbox.replica"]
