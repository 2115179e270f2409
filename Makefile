# One entry point: `make test` and `make demo` work on a fresh machine.
SHELL := /bin/bash
.SHELLFLAGS := -o pipefail -ec
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.r1relay-installed
# pip on this kind of machine prints one warning per package for local mirrors it skips.
QUIET_PIP := grep -v "is ignored: it is neither a file nor a directory" || true

.PHONY: test demo export lint bench bench-packages system-packages env compat compat-venvs
test: env
	$(PY) -m pytest $(PYTEST_ARGS)

demo: $(STAMP)  # no Debian packages: the demo needs neither chromium nor redis-server
	$(PY) install.py demo

export: env
	$(PY) install.py export dist

lint: env
	$(PY) -m ruff check .

bench: env bench-packages
	$(PY) bench/run.py

# The production-shaped bench rows run Open WebUI on PostgreSQL (a scratch cluster the bench starts and removes).
bench-packages:
	@ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || { apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q postgresql; }

env: $(STAMP) system-packages

$(STAMP): requirements-dev.txt
	python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip 2>&1 | $(QUIET_PIP)
	# torch first: open-webui would otherwise pull a multi-GB CUDA build
	$(PY) -m pip install -q torch==2.13.0 2>&1 | $(QUIET_PIP)
	$(PY) -m pip install -q -r requirements-dev.txt 2>&1 | $(QUIET_PIP)
	$(PY) -c "import open_webui, torch, playwright, flask"
	touch $(STAMP)

# Supported Open WebUI versions, proven: one venv per version (torch first, then that open-webui plus the
# test deps), then the tests marked `openwebui` run with that venv's python, so its `open-webui` is the one served.
COMPAT_VERSIONS ?= 0.6.43 0.10.2 0.12.4
COMPAT_DIR := .cache/compat
# The model servers the tests start are peers, not Open WebUI: they keep running on the repo's venv.
compat: env compat-venvs
	@failed=""; for v in $(COMPAT_VERSIONS); do \
		echo "== Open WebUI $$v"; \
		R1RELAY_PEER_PYTHON=$(abspath $(PY)) $(COMPAT_DIR)/$$v/bin/python -m pytest -m openwebui $(PYTEST_ARGS) \
			|| failed="$$failed $$v"; \
	done; \
	if [ -n "$$failed" ]; then echo "compat: failed on Open WebUI$$failed"; exit 1; fi; \
	echo "compat: passed on Open WebUI $(COMPAT_VERSIONS)"

compat-venvs: $(foreach v,$(COMPAT_VERSIONS),$(COMPAT_DIR)/$(v)/.r1relay-installed)

$(COMPAT_DIR)/%/.r1relay-installed: requirements-dev.txt
	python3 -m venv $(COMPAT_DIR)/$*
	$(COMPAT_DIR)/$*/bin/python -m pip install -q --upgrade pip 2>&1 | $(QUIET_PIP)
	$(COMPAT_DIR)/$*/bin/python -m pip install -q torch==2.13.0 2>&1 | $(QUIET_PIP)
	sed '/^open-webui/d' requirements-dev.txt > $(COMPAT_DIR)/$*/requirements-test.txt
	$(COMPAT_DIR)/$*/bin/python -m pip install -q open-webui==$* -r $(COMPAT_DIR)/$*/requirements-test.txt 2>&1 | $(QUIET_PIP)
	$(COMPAT_DIR)/$*/bin/python -c "import open_webui, torch, playwright, flask, pytest"
	touch $@

# Debian packages the tests use: a real browser, Redis as Open WebUI replicas share it, and openssl's CLI for a
# self-signed test certificate. The tests start
# their own redis-server on a free port, so apt must neither start it (a policy-rc.d that says no, unless the
# machine has one) nor leave it enabled at boot.
system-packages:
	@test -x /usr/bin/chromium -a -x /usr/bin/redis-server -a -x /usr/bin/openssl || ( \
	  apt-get update -q; \
	  if [ ! -e /usr/sbin/policy-rc.d ]; then \
	    trap 'rm -f /usr/sbin/policy-rc.d' EXIT; printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d; chmod 755 /usr/sbin/policy-rc.d; \
	  fi; \
	  DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium redis-server openssl; \
	  systemctl disable --now redis-server >/dev/null 2>&1 || update-rc.d redis-server disable >/dev/null 2>&1 || true; \
	)
