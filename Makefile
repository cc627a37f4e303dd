# Two commands: `make demo` and `make test`. Each sets up .venv itself.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-$(shell cat requirements.lock pyproject.toml | cksum | cut -d' ' -f1)

.PHONY: setup demo test lint typecheck unit bench bench-overhead bench-ledger bench-authorize clean system-deps bench-simulate bench-detection bench-scale bench-soak bench-restart bench-passkeys bench-phone bench-refusals

setup: $(STAMP)

$(STAMP): pyproject.toml requirements.lock
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	@$(BIN)/python -m pip install -q --disable-pip-version-check --upgrade pip
	@echo "installing pinned dependencies into $(VENV) (requirements.lock)..."
	@$(BIN)/python -m pip install -q --disable-pip-version-check -c requirements.lock -e '.[dev]'
	@rm -f $(VENV)/.installed-*
	@touch $(STAMP)

demo: setup
	$(BIN)/alertengine demo

# redis-server and chromium are real parts of the test suite; install them when missing.
system-deps:
	@scripts/ensure-system-deps.sh

lint: setup
	$(BIN)/ruff check src tests bench
	$(BIN)/ruff format --check src tests bench

typecheck: setup
	$(BIN)/mypy

unit: setup
	$(BIN)/pytest -q

test: setup system-deps lint typecheck unit

bench: bench-overhead bench-ledger bench-authorize bench-simulate bench-detection bench-scale bench-restart

bench-overhead: setup
	scripts/bench-venv.sh
	.bench-venv/bin/python bench/overhead.py

bench-ledger: setup
	$(BIN)/python bench/ledger.py

bench-authorize: setup
	@scripts/ensure-system-deps.sh --bench
	$(BIN)/python bench/authorize.py --backend sqlite --wrk-seconds 5
	$(BIN)/python bench/authorize.py --backend memory --wrk-seconds 5

bench-passkeys: setup
	$(BIN)/python bench/passkeys.py --backend sqlite
	$(BIN)/python bench/passkeys.py --backend memory

bench-phone: setup
	$(BIN)/python bench/phone.py --presses 500 --runs 5

bench-refusals: setup
	$(BIN)/python bench/refusals.py --requests 10000 --runs 3 --wrk-seconds 10

clean:
	rm -rf $(VENV) .bench-venv .pytest_cache .mypy_cache .ruff_cache

bench-simulate: setup
	$(BIN)/python bench/simulate.py

bench-detection: setup
	$(BIN)/python bench/detection.py --rounds 5 --traffic open
	$(BIN)/python bench/detection.py --rounds 5 --traffic closed

bench-scale: setup
	@scripts/ensure-system-deps.sh --bench
	$(BIN)/python bench/scale.py --rounds 3

bench-restart: setup
	$(BIN)/python bench/restart.py --runs 5

# Manual, not part of `make bench`: twelve minutes of steady load.
bench-soak: setup system-deps
	$(BIN)/python bench/soak.py --minutes 12
