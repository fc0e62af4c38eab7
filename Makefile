# The two set-up commands README names. Both are idempotent: the virtual environment is
# (re)built only when pyproject.toml or constraints.txt change.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.mi-oracle-installed
PEERS_STAMP := $(VENV)/.mi-oracle-peers-installed
# circuit-tracer and nnsight pin an older transformers: they get an environment of their own.
PEER_VENV ?= .venv-peers
PEER_VENV_STAMP := $(PEER_VENV)/.mi-oracle-peer-env-installed
CORES ?= all

.PHONY: install peers run test lint bench system-packages candle-mi

install: $(STAMP)

# Peer implementations the report compares against: TransformerLens and SAELens in .venv (the
# `peers` extra), circuit-tracer and nnsight in $(PEER_VENV) (envs/peers.txt, exact versions).
peers: $(PEERS_STAMP) $(PEER_VENV_STAMP)

$(PEERS_STAMP): $(STAMP)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check \
		--constraint constraints.txt --editable '.[dev,peers]'
	touch $@

$(PEER_VENV_STAMP): envs/peers.txt
	test -x $(PEER_VENV)/bin/python || $(PYTHON) -m venv $(PEER_VENV)
	$(PEER_VENV)/bin/python -m pip install --quiet --disable-pip-version-check --requirement envs/peers.txt
	$(PEER_VENV)/bin/python -m pip check
	touch $@

$(STAMP): pyproject.toml constraints.txt src/mi_oracle/encoding/_sparse_kernels.c
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check \
		--constraint constraints.txt --editable '.[dev]'
	touch $@

# Install (with every peer the report compares against), then run the whole workflow on
# config/config.yaml (the embedded Gemma 3 270M).
run: $(STAMP) peers
	$(BIN)/snakemake --cores $(CORES)

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/snakefmt --check .
	$(BIN)/snakemake --lint
	$(BIN)/snakemake --lint --configfile config/candle-mi.yaml

# Every reference candle-mi commits, from the real hub (docs/candle-mi.md): needs HF_TOKEN;
# SAELens (the PLT oracle) comes with the `peers` extra.
candle-mi: $(PEERS_STAMP)
	$(BIN)/snakemake --cores $(CORES) --configfile config/candle-mi.yaml

# Benchmarks (benchmarks/README.md): needs the embedded model, so it runs the workflow first.
bench: run peers
	$(BIN)/python benchmarks/capture_throughput.py --storage
	$(BIN)/python benchmarks/encode_throughput.py
	$(BIN)/python benchmarks/feature_queries.py
	$(BIN)/python benchmarks/dag_dry_run.py
	$(BIN)/python benchmarks/capture_dtype_drift.py
	$(BIN)/python benchmarks/numerics_cost.py

# Debian packages the tests need, root only: a one-node SLURM cluster the SLURM test starts
# itself, and headless chromium for the report's browser test.
system-packages:
	@if [ "$$(id -u)" = 0 ] && ! { command -v slurmctld && command -v chromium; } >/dev/null 2>&1; then \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
			--no-install-recommends slurmctld slurmd slurm-client munge chromium; \
	fi

# Install, lint, then run the whole test suite.
test: lint peers system-packages
	$(BIN)/python -m pytest
