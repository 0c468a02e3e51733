# Two commands: `make run` and `make test`. Both create .venv on first use.
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-$(shell cat pyproject.toml | sha1sum | cut -c1-12)

.PHONY: run test test-exhaustive lint pytest clean

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV) || python3 -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test]'
	@# Test-only reference for tests/engine/ksampling: k-diffusion's own sampling.py (A1111 1.10
	@# pins the same file). Its declared dependencies would downgrade numpy; sampling.py needs only
	@# torch, scipy, torchsde and torchdiffeq, so both install without dependencies.
	$(BIN)/python -m pip install --quiet --no-deps k-diffusion==0.1.1.post1 torchdiffeq==0.2.5
	@rm -f $(VENV)/.installed-*
	@touch $@

run: $(STAMP)
	$(BIN)/stablenew-qt

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/lint-imports
	$(BIN)/mypy stablenew_qt

pytest: $(STAMP)
	$(BIN)/python -m pytest

test: lint pytest

# The full parameter matrices (every sampler x schedule x steps x model against A1111's math).
test-exhaustive: $(STAMP)
	OMP_NUM_THREADS=1 $(BIN)/python -m pytest -m exhaustive

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache
