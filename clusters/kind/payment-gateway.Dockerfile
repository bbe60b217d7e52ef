# The payment-gateway replica the kind platform runs (the same ASGI app as the sandbox's replicas),
# and the traffic worker of in-region traffic Jobs.
# Built by `failover-drill up --platform kind` from the repository root and loaded with `kind load`.
FROM python:3.11-slim
WORKDIR /src
COPY pyproject.toml README.md ./
COPY src ./src
# Only what its two programs import: the replica (the app, its ledger, uvicorn) and the in-region
# traffic worker (failover_drill.traffic.remote_worker: httpx on aiohttp, tenacity, pydantic).
# The rest of the package's dependencies are for the drill on the host.
RUN pip install --no-cache-dir --no-deps . \
 && pip install --no-cache-dir "uvicorn>=0.30" "httptools>=0.6" "uvloop>=0.19" \
    "httpx>=0.28" "aiohttp>=3.10" "tenacity>=9.0" "pydantic>=2.7" "pyyaml>=6.0"
USER 65532
ENTRYPOINT ["python", "-m", "failover_drill.platforms.service.replica"]
