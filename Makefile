# The two commands of the README: `make demo` and `make test`.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
PYTEST_ARGS ?=

.PHONY: demo test bench lint clean

demo: $(VENV)/.demo-installed
	$(BIN)/ember demo $(DEMO_ARGS)

test: $(VENV)/.all-installed
	bash .ci/system-deps.sh test
	$(BIN)/python -m pytest $(PYTEST_ARGS)

bench: $(VENV)/.all-installed
	for b in bench/*.py; do $(BIN)/python $$b || exit 1; done

lint: $(VENV)/.all-installed
	$(BIN)/ruff check sdk apps firmware_export tests bench examples

$(VENV)/.venv-created:
	bash .ci/system-deps.sh demo
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	touch $@

$(VENV)/.demo-installed: $(VENV)/.venv-created pyproject.toml
	PYTHONWARNINGS=ignore $(BIN)/pip install -q --disable-pip-version-check -e '.[litert,audio,sensors,fleet]'
	touch $@

$(VENV)/.all-installed: $(VENV)/.venv-created pyproject.toml
	PYTHONWARNINGS=ignore $(BIN)/pip install -q --disable-pip-version-check -e '.[all]'
	touch $@ $(VENV)/.demo-installed

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache demo-out
