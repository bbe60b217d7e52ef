# Every target creates .venv on first use, so a fresh clone needs nothing but python3 and make.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

REGION ?= us-east1
FAULT ?= region-loss
PLATFORM ?= sandbox
MESH ?=
MODE ?=
RATE ?=
ARGS ?=

.PHONY: prove soak setup drill test lint typecheck layers unit bench down recover clean k8s-bin prometheus-bin

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev,chaos,kube]'
	touch $(STAMP)

setup: $(STAMP)

drill: $(STAMP)
	$(BIN)/failover-drill drill --platform $(PLATFORM) --region $(REGION) --fault $(FAULT) \
		$(if $(MESH),--mesh $(MESH)) $(if $(MODE),--mode $(MODE)) $(if $(RATE),--rate $(RATE)) $(ARGS)

lint: $(STAMP)
	$(BIN)/ruff check src tests bench
	$(BIN)/ruff format --check src tests bench

typecheck: $(STAMP)
	$(BIN)/mypy

layers: $(STAMP)
	$(BIN)/lint-imports

unit: $(STAMP)
	$(BIN)/pytest -q

test: lint typecheck layers unit

# Kubernetes components (etcd, kube-*, kwok, rollouts-controller) built with go into ~/.cache/failover-drill
# (FAILOVER_DRILL_CACHE overrides); only what changed in src/failover_drill/toolchain/pins.toml.
k8s-bin: $(STAMP)
	$(BIN)/python -m failover_drill.toolchain build

# Prometheus (for the prometheus AnalysisTemplate) from Debian's archive: apt-get download + dpkg-deb
# into ~/.cache/failover-drill/prometheus, no root, nothing installed; the tests fetch it on first use.
prometheus-bin: $(STAMP)
	$(BIN)/python -m failover_drill.toolchain fetch prometheus

soak: $(STAMP)
	$(BIN)/pytest -q -s -m soak tests/test_soak.py

prove: $(STAMP)
	$(BIN)/pytest -q -m 'prove or not prove' tests/test_predict_drills.py

bench: $(STAMP)
	$(BIN)/python bench/run_all.py

down: $(STAMP)
	$(BIN)/failover-drill down

recover: $(STAMP)
	$(BIN)/failover-drill recover

clean:
	rm -rf $(VENV) .failover-drill runs .mypy_cache .ruff_cache .pytest_cache
