# edgeguard — `make demo` runs the whole thing locally, `make test` runs every check.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp

.PHONY: demo city-demo test lint typecheck pytest docs bench chaos fuzz system-deps venv lock clean

demo: system-deps venv
	$(BIN)/python scripts/demo.py

# the police platform of a city: 3-node RabbitMQ, PostgreSQL, 2 receivers, a real site and
# a few hundred simulated hospitals (docs/city-platform.md)
city-demo: system-deps venv
	$(BIN)/python scripts/city_demo.py

test: system-deps venv lint typecheck pytest

system-deps:
	@bash scripts/system-deps.sh

# every package at the version in requirements.lock (a constraints file: docs/install.md)
venv: $(STAMP)

$(STAMP): pyproject.toml requirements.lock
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "edgeguard needs Python >= 3.11")'
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet -c requirements.lock --upgrade pip
	$(BIN)/python -m pip install --quiet -c requirements.lock -e '.[dev]'
	touch $(STAMP)

# requirements.lock from .venv as it is; scripts/lock.sh --resolve resolves everything afresh
lock: venv
	bash scripts/lock.sh

lint: venv
	$(BIN)/ruff check edgeguard drivers tests bench scripts

typecheck: venv
	$(BIN)/mypy

pytest: venv
	$(BIN)/pytest

docs: venv
	$(BIN)/edgeguard config-reference > docs/config-reference.md

bench: venv
	$(BIN)/python bench/alarm_latency.py
	$(BIN)/python bench/alarm_storm.py
	$(BIN)/python bench/daemon_footprint.py
	$(BIN)/python bench/modbus_poll.py
	$(BIN)/python bench/field_latency.py
	$(BIN)/python bench/camera_capture.py
	$(BIN)/python bench/analytics.py
	$(BIN)/python bench/count_eval.py
	$(BIN)/python bench/motion_compare.py
	$(BIN)/python bench/console_latency.py
	$(BIN)/python bench/cli_startup.py
	$(BIN)/python bench/broker_loss.py

# >= 200 SIGKILLs of a real daemon and 30 of its broker, counted at an independent subscriber
chaos: system-deps venv
	$(BIN)/python bench/chaos.py

# 1,000,000 inputs per parser on every core, then 3,000 raw HTTP requests (tens of minutes)
fuzz: system-deps venv
	$(BIN)/python bench/fuzz.py --inputs 1000000 --seed 1

clean:
	rm -rf $(VENV) .demo build *.egg-info .pytest_cache .mypy_cache .ruff_cache test-artifacts
