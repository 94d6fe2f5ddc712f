# make demo  - a fresh machine to a lab fleet of two healthy hosts (left up)
# make test  - unit, end-to-end (lab) and verification tests; CI runs this
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
LAB_DEBS := debootstrap systemd-container squid iproute2 openssh-client curl gnupg

.PHONY: venv lab-deps test unit e2e lint demo down settings-table

venv: $(BIN)/.installed
$(BIN)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[dev]'
	touch $@

lab-deps:
	@if [ "$$(id -u)" != 0 ]; then \
	  echo "lab-deps: the lab needs root and the Debian packages: $(LAB_DEBS)"; \
	  echo "          run: sudo make lab-deps   (or sudo apt-get install -y $(LAB_DEBS))"; exit 1; fi
	@missing=$$(for p in $(LAB_DEBS); do dpkg -s $$p >/dev/null 2>&1 || echo $$p; done); \
	if [ -n "$$missing" ]; then apt-get update -qq && \
	  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null; fi

lint: venv
	$(BIN)/ruff check .
	$(BIN)/lint-imports
	$(BIN)/mypy

unit: venv
	$(BIN)/pytest -q tests/unit

e2e: venv lab-deps
	$(BIN)/pytest -v tests/e2e

test: lint venv lab-deps
	$(BIN)/pytest -v tests/unit tests/e2e

demo: venv lab-deps
	./lab/lab up 2
	$(BIN)/pyinfra -y inventory.py deploy.py
	./lab/lab status
	@echo "The lab is up: run '$(BIN)/pyinfra inventory.py deploy.py' again, or '$(BIN)/pytest tests/verify'; 'make down' removes it."

down:
	./lab/lab down

settings-table: venv
	$(BIN)/python scripts/settings_table.py --write
