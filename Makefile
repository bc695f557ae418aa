# Tyk Inspector. `make run` and `make test` set up everything they need themselves.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
GRPC ?= localhost:50051
ARGS ?=

.PHONY: install install-dev run serve build clean test bench-smoke lint format dispatch dispatch_event bench bench-quick chromium redis screenshot

$(VENV)/.runtime: pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e .
	touch $@

$(VENV)/.dev: $(VENV)/.runtime
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $@

install: $(VENV)/.runtime
install-dev: $(VENV)/.dev

run serve: install  ## run the inspector: gRPC on :50051, dashboard on http://localhost:8000
	$(PY) main.py serve $(ARGS)

build: install-dev  ## regenerate protogen/ from protos/
	$(PY) scripts/gen_protos.py

clean:  ## remove caches and build output; protogen/ is committed source and stays
	rm -rf build *.egg-info .pytest_cache .mypy_cache .ruff_cache benchmarks/results

chromium:  ## Debian's chromium for the browser tests, installed when missing
	@scripts/ensure-chromium.sh

redis:  ## Debian's redis-server for the Redis store's tests, installed when missing
	@scripts/ensure-redis.sh

# Tests run in parallel workers; those marked `serial` (latency and load measurements) run alone afterwards,
# so another worker's browser cannot skew what they measure. The benchmark smoke run is `make bench-smoke`.
TEST_WORKERS ?= 2
test: install-dev chromium redis  ## every test but the benchmark smoke run, browser tests included
	$(PY) -m pytest -n $(TEST_WORKERS) -m "not bench and not serial" $(ARGS)
	$(PY) -m pytest -m "serial and not bench" $(ARGS) || [ $$? -eq 5 ]

bench-smoke: install-dev  ## the benchmark smoke test (.ci/run runs it after make test)
	$(PY) -m pytest -m bench $(ARGS)

lint: install-dev
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .
	$(PY) -m mypy

format: install-dev
	$(PY) -m ruff check --fix .
	$(PY) -m ruff format .

dispatch: install  ## send examples/pre.json to a running Dispatcher (GRPC=host:port)
	$(PY) main.py send examples/pre.json --to $(GRPC)

dispatch_event: install  ## send examples/event-auth-failure.json to a running Dispatcher
	$(PY) main.py send examples/event-auth-failure.json --to $(GRPC)

bench: install-dev  ## full benchmarks; figures in benchmarks/results/ and docs/benchmarks.md
	$(PY) -m benchmarks $(ARGS)

bench-quick: install-dev  ## a short benchmark run, as a smoke test
	$(PY) -m benchmarks --quick $(ARGS)

screenshot: install-dev chromium  ## docs/dashboard.png, the README's picture
	$(PY) scripts/screenshot.py
