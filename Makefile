# PipeDesk — the commands a developer and CI need. `make run` and `make test` work on a fresh machine.
SHELL := /bin/bash
.DEFAULT_GOAL := help

UV := $(shell command -v uv 2>/dev/null || echo "python3 -m uv")
PYTHON := .venv/bin/python
PROMTOOL := .dev/tools/usr/bin/promtool
PORT_BASE ?= 8000
export PORT_BASE
# Processes per service in make run (and the bench); each service's database pool is divided
# among them.
WORKERS ?= 1
export WORKERS
export UV_PYTHON_DOWNLOADS := never

.PHONY: help install preflight migrate keys browser wrk contract-tools chaos-servers run test contract lint format token bench mutate chaos

help: ## Show the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F ':.*## ' '{printf "  make %-10s %s\n", $$1, $$2}'

install: ## Install uv if missing, then the whole workspace from uv.lock
	@command -v uv >/dev/null 2>&1 || python3 -m uv --version >/dev/null 2>&1 || python3 -m pip install --quiet uv
	@$(UV) sync --all-packages --locked --quiet
	@$(PYTHON) -m compileall -q -j 0 libs/*/src services/*/src gateway/src >/dev/null

preflight: install ## Check that PostgreSQL, RabbitMQ (and Redis if REDIS_URL is set) answer
	@$(PYTHON) -m pipedesk_common.preflight

migrate: preflight ## Run every service's migrations
	@$(PYTHON) -m pipedesk_common.migrations

keys: install ## Generate the dev identity provider's and services' keys (once; kept in .dev/, out of git)
	@$(PYTHON) -m dev_identity init

# Debian's Chromium, for the browser tests (driven by Playwright; no browser is ever downloaded).
# Installed with apt-get when missing and running as root (CI, a fresh machine); otherwise the
# browser tests fail with this instruction.
CHROMIUM := /usr/bin/chromium

browser: ## Install Debian's Chromium for the browser tests if it is missing (as root)
	@[ -x $(CHROMIUM) ] || { [ "$$(id -u)" = 0 ] && echo "installing Chromium for the browser tests (apt-get)" \
		&& apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; } \
		|| echo "the browser tests need Chromium at $(CHROMIUM): apt-get install chromium" >&2

# The preflight provides the servers (starting those that do not answer in Docker) for as long as
# the migrations and the system run.
run: keys ## Start the whole system on the Wiring ports (PORT_BASE shifts them); a process that dies is restarted
	@GOOGLE_ROOT_URL="$${GOOGLE_ROOT_URL:-http://127.0.0.1:$$(($(PORT_BASE) + 90))/}" \
		FRONTEND_ORIGINS="$${FRONTEND_ORIGINS:-http://localhost:3000}" \
		$(PYTHON) -m pipedesk_common.preflight -- \
		sh -c '$(PYTHON) -m pipedesk_common.migrations && exec $(PYTHON) -m dev_identity.supervise Procfile'

# wrk, the load generator of make bench (and of the tiny bench make test runs).
wrk: ## Install wrk for the benchmarks if it is missing (as root)
	@command -v wrk >/dev/null || { [ "$$(id -u)" = 0 ] && apt-get update -qq && apt-get install -y -qq wrk >/dev/null; } \
		|| { echo "the benchmarks need wrk: apt-get install wrk" >&2; exit 1; }

# Node.js (Debian's) and the npm packages of the contract checks (AsyncAPI's parser,
# openapi-typescript, tsc), pinned by tools/contracts/package-lock.json and installed with npm ci
# (from npm's cache when it holds them) into tools/contracts/node_modules, out of git.
CONTRACT_TOOLS := tools/contracts

contract-tools: ## Install Node.js if it is missing (as root) and the contract checks' npm packages
	@command -v node >/dev/null && command -v npm >/dev/null || { [ "$$(id -u)" = 0 ] \
		&& echo "installing Node.js for the contract checks (apt-get)" && apt-get update -qq \
		&& DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nodejs npm >/dev/null; } \
		|| { echo "the contract checks need Node.js: apt-get install nodejs npm" >&2; exit 1; }
	@[ $(CONTRACT_TOOLS)/node_modules/.package-lock.json -nt $(CONTRACT_TOOLS)/package-lock.json ] \
		|| npm ci --prefix $(CONTRACT_TOOLS) --prefer-offline --ignore-scripts --no-audit --no-fund --loglevel=error

# The servers the chaos suite runs privately (its own node and cluster, never the shared ones):
# Debian's RabbitMQ and PostgreSQL binaries, installed with apt-get when missing and running as
# root; the packages' own services are not needed.
chaos-servers: ## Install RabbitMQ's and PostgreSQL's binaries for the chaos suite if missing (as root)
	@{ ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 && [ -x /usr/lib/rabbitmq/bin/rabbitmq-server ]; } \
		|| { [ "$$(id -u)" = 0 ] && apt-get update -qq && DEBIAN_FRONTEND=noninteractive \
			apt-get install -y -qq postgresql rabbitmq-server >/dev/null; } \
		|| { echo "the chaos suite needs apt-get install postgresql rabbitmq-server" >&2; exit 1; }

# The whole suite runs in two streams: the tests that start servers and processes of their own and
# spend their time waiting on them (the chaos run on its private servers, make run in a clean copy)
# beside the rest, their output after it; the published contract's run (a system of its own and
# schemathesis, minutes) goes there too, on the cores the chaos run leaves idle. With PYTEST_ARGS,
# one pytest run of what they select.
BESIDE := bench/tests/test_chaos.py tests/test_make_run.py tests/contract/test_published_contract.py

test: install browser wrk contract-tools chaos-servers $(PROMTOOL) ## Install everything (Chromium, wrk too), then run the whole suite
ifeq ($(strip $(PYTEST_ARGS)),)
	@mkdir -p test-artifacts; \
	$(PYTHON) -m pytest $(BESIDE) > test-artifacts/beside.log 2>&1 & beside=$$!; \
	trap 'kill $$beside 2>/dev/null' INT TERM; \
	$(PYTHON) -m pytest $(addprefix --ignore=,$(BESIDE)); suite=$$?; \
	wait $$beside; other=$$?; \
	echo "--- beside the suite: $(BESIDE)"; cat test-artifacts/beside.log; \
	exit $$(( suite != 0 ? suite : other ))
else
	@$(PYTHON) -m pytest $(PYTEST_ARGS)
endif

contract: install ## Only the published-contract run of make test: schemathesis over the gateway's merged OpenAPI document (minutes)
	@$(PYTHON) -m pytest tests/contract $(PYTEST_ARGS)

# promtool, for deploy/tests (the alert rules): taken from Debian's prometheus package without
# installing it (no server is set up or started), into .dev/tools/.
$(PROMTOOL):
	@mkdir -p .dev/tools && cd .dev/tools && rm -f prometheus_*.deb \
		&& { apt-get download -qq prometheus >/dev/null 2>&1 || { [ "$$(id -u)" = 0 ] && apt-get update -qq \
			&& apt-get download -qq prometheus >/dev/null 2>&1; }; } \
		|| { echo "make test needs Debian's prometheus package (for promtool): apt-get download prometheus" >&2; exit 1; }
	@cd .dev/tools && dpkg-deb --fsys-tarfile prometheus_*.deb | tar -x ./usr/bin/promtool && rm prometheus_*.deb
	@$(PROMTOOL) --version >/dev/null

lint: install ## Formatting, lint, types and architecture contracts
	$(UV) run --no-sync ruff format --check .
	$(UV) run --no-sync ruff check .
	$(UV) run --no-sync mypy libs/*/src libs/*/tests services/*/src gateway/src bench
	$(UV) run --no-sync lint-imports

format: install ## Format and fix what can be fixed automatically
	$(UV) run --no-sync ruff format .
	$(UV) run --no-sync ruff check --fix .

BENCH_DATABASE_URL ?= postgresql+asyncpg://postgres@127.0.0.1:5432/pipedesk_bench$(if $(QUICK),_quick)
bench: export DATABASE_URL = $(BENCH_DATABASE_URL)
bench: migrate keys wrk ## Benchmarks against their raw baselines, ~9 min (QUICK=1: small, ~1 min)
	@$(PYTHON) -m bench $(if $(QUICK),--quick) $(if $(BENCH_PORT_BASE),--port-base $(BENCH_PORT_BASE))

chaos: install chaos-servers ## Crash a private broker and database while 10,000 events flow; checks and recovery times (~15 min)
	@$(PYTHON) -m bench.chaos --save $(if $(EVENTS),--events $(EVENTS))

mutate: preflight ## Mutation testing of the modules holding the guarantees, niced (ONLY=outbox,rbac: some)
	@nice -n 19 $(PYTHON) -m bench.mutate $(if $(ONLY),--only $(ONLY))

token: install ## Print a dev access token: make token SUB=u1 ROLE=rep ORG=acme TEAMS=t1,t2 EMAIL=u1@acme.test
	@$(PYTHON) -m dev_identity token --sub "$(or $(SUB),dev-user)" --role "$(or $(ROLE),rep)" \
		--org "$(or $(ORG),demo)" --teams "$(TEAMS)" $(if $(EMAIL),--email "$(EMAIL)")
