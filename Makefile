# weatherstream developer targets. Every target that needs the virtualenv creates it first.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: install bench chaos cluster-test soak system-tools stack-up stack-down stack-status test lint demo clean

install: $(STAMP)

$(STAMP): setup.cfg pyproject.toml weatherstream/web/assets.py
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 10) else "weatherstream needs Python 3.10 or newer; set PYTHON=python3.11")'
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test,dev]'
	$(BIN)/weatherstream web-assets
	touch $(STAMP)

stack-up: $(STAMP)
	$(BIN)/weatherstream stack up

stack-down: $(STAMP)
	$(BIN)/weatherstream stack down

stack-status: $(STAMP)
	$(BIN)/weatherstream stack status

# Browser and Prometheus checks in the tests need Debian's chromium and promtool (package prometheus).
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
system-tools:
	@missing=""; \
	command -v chromium >/dev/null || missing="$$missing chromium"; \
	command -v promtool >/dev/null || missing="$$missing prometheus"; \
	if [ -n "$$missing" ]; then \
	  echo "installing Debian packages:$$missing (for the browser and metrics tests)"; \
	  ( $(SUDO) apt-get update -qq && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq $$missing >/dev/null ) \
	  || { echo "could not install$$missing with apt-get: install them by hand (Debian packages), then run make test again" >&2; exit 1; }; \
	fi

test: $(STAMP) system-tools
	$(BIN)/weatherstream stack up
	@$(BIN)/python -m pytest $(PYTEST_ARGS); status=$$?; \
	echo "The local stack (Kafka and Cassandra) is left running for the next run;"; \
	echo "stop it with: $(BIN)/weatherstream stack down"; \
	exit $$status

# Side-by-side benchmarks (not part of make test): BENCH_ARGS="--events 20000 --repeat 1" for a quick look,
# LATENCY_ARGS="--rates 200,500 --seconds 30" for a shorter latency sweep, KEYSCALE_ARGS="--events 20000
# --stations 50,10000" for a short key-scale run. Results: benchmarks/results/.
bench: $(STAMP)
	$(BIN)/python -m pip install --quiet -e '.[bench]'
	$(BIN)/weatherstream stack up
	$(BIN)/python -m benchmarks.drain $(BENCH_ARGS)
	$(BIN)/python -m benchmarks.latency $(LATENCY_ARGS)
	$(BIN)/python -m benchmarks.keyscale $(KEYSCALE_ARGS)

# Reliability suite, full form (make test runs it with 3 kills): crash loop with CHAOS_KILLS kill -9s,
# lost RocksDB folder, Cassandra stopped 60 s and broker restarted, 10,000 fuzzed payloads. Figures printed.
CHAOS_KILLS ?= 20
chaos: $(STAMP)
	$(BIN)/weatherstream stack up
	WEATHERSTREAM_CHAOS_KILLS=$(CHAOS_KILLS) $(BIN)/python -m pytest -s $(PYTEST_ARGS) \
	  tests/integration/test_chaos.py tests/integration/test_sink_outage.py tests/integration/test_fuzz_worker.py

# Failover suite on a cluster of three Kafka brokers and three Cassandra nodes (the tests start it in a folder
# and on ports of its own, and stop it): a broker and a Cassandra node lost in one run, then each failure in a
# run of its own, CLUSTER_DOWN_S long. make test runs only its migration test. Figures printed (CLUSTER {...}).
CLUSTER_DOWN_S ?= 60
cluster-test: $(STAMP)
	WEATHERSTREAM_CLUSTER_DOWN_S=$(CLUSTER_DOWN_S) $(BIN)/python -m pytest -s $(PYTEST_ARGS) \
	  -m "not soak" tests/integration/test_cluster.py

# An hour at 200 events/s on that cluster, a worker restarted every five minutes: nothing lost, no partition
# left unconsumed for over a minute, worker memory flat (SOAK_MINUTES=10 for a short look).
SOAK_MINUTES ?= 60
soak: $(STAMP)
	WEATHERSTREAM_SOAK_MINUTES=$(SOAK_MINUTES) $(BIN)/python -m pytest -s $(PYTEST_ARGS) -m soak \
	  tests/integration/test_cluster.py

demo: $(STAMP)
	$(BIN)/weatherstream stack up
	$(BIN)/weatherstream demo

lint: $(STAMP)
	$(BIN)/ruff check weatherstream agents models tests
	$(BIN)/ruff format --check weatherstream agents models tests
	$(BIN)/mypy
	@# known vulnerabilities in the installed dependencies (PyPI advisory data; our own package is skipped).
	@# --strict: a dependency that cannot be audited (e.g. behind a mirror without PyPI's JSON API) fails too.
	$(BIN)/pip-audit --strict --skip-editable --progress-spinner off

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache .mypy_cache .ruff_cache
