# ecard: the targets people guess. `make run` and `make test` do all their own set-up.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
ECARD := $(VENV)/bin/ecard
CONTRACT := $(wildcard ../shared/tools/check_contract.py)
LISTEN ?= 127.0.0.1:50051
PYTEST_ARGS ?=

.PHONY: install install-server proto lint typecheck test test-fast test-embedded run demo clean

install: $(VENV)/.installed

# Everything comes from the lock (exact versions, sha256 of every file: requirements/dev.txt), pip and
# setuptools included; then this tree itself, editable, with nothing more resolved.
$(VENV)/.installed: pyproject.toml client/pyproject.toml server/pyproject.toml requirements/dev.txt
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --require-hashes --no-deps -r requirements/dev.txt
	$(PY) -m pip uninstall --quiet --yes ecard ecard-server  # an older tree's single distribution, if any
	$(PY) -m pip install --quiet --no-deps --no-build-isolation -e client -e server
	touch $@ $(VENV)/.server-installed

# What `make run` needs and no more: the server's lock (runtime, PostgreSQL and Redis drivers), then the
# two distributions, editable. `make install` (tests, lint, load tests) adds the rest on top.
install-server: $(VENV)/.server-installed

$(VENV)/.server-installed: client/pyproject.toml server/pyproject.toml requirements/server.txt
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --require-hashes --no-deps -r requirements/server.txt
	$(PY) -m pip uninstall --quiet --yes ecard ecard-server  # an older tree's single distribution, if any
	$(PY) -m pip install --quiet --no-deps --no-build-isolation -e client -e server
	touch $@

# The locks again from pyproject.toml under requirements/floors.txt, from PyPI alone (the machine's
# pip configuration is not read): dev.txt (make install, CI), server.txt (a production server:
# `pip install --require-hashes -r requirements/server.txt`, then `pip install --no-deps ecard`).
LOCK_VENV ?= .venv-lock
COMPILE = PIP_CONFIG_FILE=/dev/null PIP_FIND_LINKS= $(LOCK_VENV)/bin/pip-compile --quiet --generate-hashes \
	--allow-unsafe --strip-extras --no-emit-index-url -c requirements/floors.txt
.PHONY: lock
lock:  ## recompute requirements/dev.txt and server.txt (needs PyPI; a few minutes)
	$(PYTHON) -m venv $(LOCK_VENV)
	$(LOCK_VENV)/bin/pip install --quiet --upgrade pip pip-tools  # the resolver of a current pip
	$(COMPILE) --extra dev -o requirements/dev.txt pyproject.toml requirements/build.in
	sed -i '/^ecard-workspace @ /,/^    # via ecard-workspace (pyproject.toml)$$/d; /^# WARNING: pip install will require/d; /^# Consider using a hashable URL/d' requirements/dev.txt
	$(COMPILE) --extra postgres --extra redis -c requirements/dev.txt -o requirements/server.txt pyproject.toml requirements/build.in

# Typed stubs by mypy-protobuf: *_pb2.pyi for the messages, *_pb2_grpc.pyi for the sync and asyncio stubs
# and servicers (what `mypy --strict` on client/ checks the SDK against).
proto: install  ## regenerate client/ecard/v1 from proto/ecard/v1 (with typed .pyi stubs)
	$(PY) -m grpc_tools.protoc -Iproto --python_out=client --grpc_python_out=client \
		--plugin=protoc-gen-mypy=$(VENV)/bin/protoc-gen-mypy --mypy_out=quiet:client \
		--plugin=protoc-gen-mypy_grpc=$(VENV)/bin/protoc-gen-mypy_grpc --mypy_grpc_out=quiet:client \
		proto/ecard/v1/*.proto

lint: install  ## ruff, mypy (--strict on the SDK) and the contract check (what CI runs before the tests)
	$(VENV)/bin/ruff check .
	$(MAKE) --no-print-directory typecheck
ifneq ($(CONTRACT),)
	$(PY) $(CONTRACT) --proto-dir proto
endif

typecheck: install  ## mypy: the SDK (client/) --strict, the server as pyproject.toml says
	$(VENV)/bin/mypy --strict client/ecard
	$(VENV)/bin/mypy server/ecard_server

# The tests start `ecard` (and loadtest) as child processes hundreds of times: compiled once here, each
# one reads the bytecode instead of compiling the sources again (it writes none where
# PYTHONDONTWRITEBYTECODE is set). Only what changed since the last run is compiled again.
.PHONY: bytecode
bytecode: install
	@$(PY) -m compileall -q client/ecard server/ecard_server loadtest >/dev/null

# `make test` in two parts: every test not marked `serial` on $(TEST_WORKERS) pytest-xdist workers (a module's
# tests on one worker, with its module-scoped servers: --dist loadscope), then the `serial` ones (timing and
# load tests) one at a time, alone. Each part prints its own summary; a part that selects nothing (exit 5:
# PYTEST_ARGS chose only the other kind) is no failure, both selecting nothing is.
TEST_WORKERS ?= 2
test: bytecode  ## every test, PostgreSQL and Redis included (they fail when those are down)
	@$(PY) -m pytest --part parallel -n $(TEST_WORKERS) --dist loadscope $(PYTEST_ARGS); parallel=$$?; \
	$(PY) -m pytest --part serial $(PYTEST_ARGS); serial=$$?; \
	case "$$parallel $$serial" in "0 0"|"0 5"|"5 0") exit 0;; "5 5") exit 5;; *) exit 1;; esac

test-fast: bytecode  ## the daily loop: tests/unit and tests/api (servers in the test process; no PostgreSQL, Redis or child process)
	$(PY) -m pytest tests/unit tests/api -m "not postgres and not redis" $(PYTEST_ARGS)

test-embedded: bytecode  ## only what needs no PostgreSQL or Redis (a laptop)
	$(PY) -m pytest -m "not postgres and not redis" $(PYTEST_ARGS)

run: install-server  ## the server on $(LISTEN) with demo data (SQLite in var/); Ctrl-C stops it
	@mkdir -p var
	@$(ECARD) serve --db sqlite:///var/ecard.db --secret-file var/secret --listen $(LISTEN) --dev-principals & pid=$$!; \
	trap 'kill $$pid 2>/dev/null; wait $$pid' INT TERM EXIT; \
	$(ECARD) demo --target $(LISTEN) --out var/demo --server-pid $$pid && \
	echo "(server running; Ctrl-C to stop)" && wait $$pid

# Load tests (loadtest/): each starts `ecard serve` on a free loopback port, seeds it through the
# public API, runs Locust headless for a bounded time, stops the server and prints the SLO verdict
# (exit 1 naming the threshold that failed). Reports in reports/. Options for Locust or the harness:
# make loadtest LOADTEST_ARGS="--arrival-rate 80 --slo-checkout-p99 2"; a real deployment: --host H:P.
LOADTEST_ARGS ?=
.PHONY: loadtest loadtest-capacity loadtest-distributed

loadtest: install  ## the SLO gate: 60 s of load at 40 visits/s (about 1.5 min in all, killed past 4 min)
	$(PY) -m loadtest steady --run-time 60s $(LOADTEST_ARGS)

loadtest-capacity: install  ## raise the arrival rate step by step until the SLO breaks (at most 6 min of load)
	$(PY) -m loadtest capacity --run-time 6m $(LOADTEST_ARGS)

loadtest-distributed: install  ## a Locust master (--expect-workers 2) and 2 workers, 60 s of load (about 1.5 min)
	$(PY) -m loadtest distributed --workers 2 --run-time 60s $(LOADTEST_ARGS)

clean:
	rm -rf var reports build dist .pytest_cache .ruff_cache .mypy_cache .hypothesis $(LOCK_VENV)
	find . -name __pycache__ -not -path './$(VENV)/*' -prune -exec rm -rf {} +

.PHONY: bench
SCALE ?= ci
bench: install  ## Verify/Batch/Stream/Settle beside transport and signature limits, then ecard against two peers (~2.5 min); SCALE=national: 20M cards in PostgreSQL, cache cold/half/warm (~20 min, not in CI)
ifeq ($(SCALE),national)
	$(PY) -m loadtest.bench.national --out reports/bench_national.json
else
	@status=0; \
	$(PY) -m loadtest.bench --scale $(SCALE) $(if $(BENCH_SECONDS),--seconds $(BENCH_SECONDS)) --out reports/bench.json || status=1; \
	$(PY) -m loadtest.bench.versus --out reports/bench_versus.json || status=1; \
	$(PY) -m loadtest.bench.events --out reports/bench_events.json || status=1; \
	$(PY) -m loadtest.bench.tracing_cost --out reports/bench_tracing.json || status=1; \
	$(PY) -m loadtest.bench.pricing --out reports/bench_pricing.json || status=1; \
	$(PY) -m loadtest.bench.statements --out reports/bench_statements.json || status=1; \
	exit $$status
endif

.PHONY: bench-events
bench-events: install  ## channel events: 1,000 a second delivered to 22 open WatchEvents streams, lag p99 (~20 s)
	$(PY) -m loadtest.bench.events --out reports/bench_events.json

.PHONY: bench-pricing
bench-pricing: install  ## Quote and Settle of a 20-line basket vs a 100,000-item catalogue, beside the 3-line Settle, SQLite and PostgreSQL (~1.5 min)
	$(PY) -m loadtest.bench.pricing --out reports/bench_pricing.json

.PHONY: bench-statements
bench-statements: install  ## DailyTotals over 1,000,000 settlements of one day on PostgreSQL, <= 1 s (~2 min)
	$(PY) -m loadtest.bench.statements --out reports/bench_statements.json

.PHONY: bench-versus
bench-versus: install  ## only ecard embedded and shared against the simple and the competent shared peer (~1 min)
	$(PY) -m loadtest.bench.versus --out reports/bench_versus.json

.PHONY: bench-workers
WORKERS ?= 2
bench-workers: install  ## Verify with serve --workers $(WORKERS) beside one worker (needs PostgreSQL and Redis)
	$(PY) -m loadtest.bench.workers --workers $(WORKERS) --out reports/bench_workers.json $(if $(REDIS_CLUSTER),--redis-cluster)

# Replicas on their own addresses (loadtest/rig/cluster.py; needs root for ip netns): three `ecard serve` in
# network namespaces 10.231.N.2-4 on a bridge, mTLS, on a fresh PostgreSQL database (its Unix socket) and
# the machine's Redis (relayed from a Unix socket). Everything is removed at the end, also on failure.
.PHONY: cluster-demo cluster-propagation loadtest-failover
cluster-demo: install  ## 3 replicas, round robin from one SDK client, one SIGKILLed and restarted (~30 s)
	$(PY) -m loadtest.rig.cluster

CHANGES ?= 1000
cluster-propagation: install  ## $(CHANGES) lost/reinstated changes on one replica, timed on the two others (p50/p99/max)
	$(PY) -m loadtest.measure.propagation --changes $(CHANGES) --out reports/propagation.json

loadtest-failover: install  ## the SLO load on 3 replicas, one SIGKILLed at 40 s and restarted at 70 s (120 s of load, ~3 min)
	$(PY) -m loadtest failover --run-time 120s --kill-at 40 --restart-at 70 $(LOADTEST_ARGS)

.PHONY: ha-demo
ha-demo: install  ## PostgreSQL under Patroni (etcd, a primary and a synchronous standby): settling while the primary is killed (~1 min)
	$(PY) -m loadtest.rig.ha_demo

.PHONY: fuzz
FUZZ_CASES ?= 100000
fuzz: install  ## hostile tokens against a real loopback server: no accept, no crash (100k cases, ~3 min; CI runs 10k)
	$(PY) -m loadtest.fuzz --cases $(FUZZ_CASES) --out reports/fuzz.json
