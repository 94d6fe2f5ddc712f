# make demo  - a fresh machine to a lab fleet of two healthy hosts (left up)
# make test  - unit, end-to-end (lab) and verification tests; CI runs this
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
LAB_DEBS := debootstrap systemd-container squid iproute2 openssh-client curl gnupg
TOOLS := .tools

.PHONY: venv lab-deps tools test unit e2e lint demo down settings-table

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

# promtool and prometheus from the distribution's package, unpacked here (nothing installed or
# started on this machine): the alert rules' tests and the metrics' format checks use them.
tools: $(TOOLS)/bin/promtool
$(TOOLS)/bin/promtool:
	rm -rf $(TOOLS)/deb && mkdir -p $(TOOLS)/deb $(TOOLS)/bin
	cd $(TOOLS)/deb && { apt-get download prometheus 2>/dev/null || \
	  { apt-get update -qq && apt-get download prometheus; }; }
	dpkg-deb -x $(TOOLS)/deb/prometheus_*.deb $(TOOLS)/deb/root
	cp $(TOOLS)/deb/root/usr/bin/prometheus $(TOOLS)/deb/root/usr/bin/promtool $(TOOLS)/bin/
	rm -rf $(TOOLS)/deb

lint: venv
	$(BIN)/ruff check .
	$(BIN)/lint-imports
	$(BIN)/mypy

unit: venv tools
	$(BIN)/pytest -q tests/unit

e2e: venv lab-deps
	$(BIN)/pytest -v tests/e2e

test: lint venv lab-deps tools
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
