# The README's two commands are `make demo` and `make test`; both set everything up first.
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.avforge-installed
PYTEST_ARGS ?=

.PHONY: setup demo test test-quick lint layers format bench clean

$(STAMP): requirements.lock pyproject.toml scripts/setup.sh
	VENV=$(VENV) bash scripts/setup.sh
	touch $(STAMP)

setup: $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/avforge demo

# pytest exits 5 when it collected no test: that must not pass as green.
test: $(STAMP)
	@$(PY) -m pytest $(PYTEST_ARGS); rc=$$?; \
	if [ $$rc -eq 5 ]; then echo "make test: no tests were collected" >&2; exit 1; fi; exit $$rc

test-quick: $(STAMP)
	@$(MAKE) --no-print-directory test PYTEST_ARGS="-m 'not slow' $(PYTEST_ARGS)"

lint: $(STAMP)
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .

# The import layering (ground floor <- manifests <- stages <- training <- tools <- CLI): docs/architecture.md
layers: $(STAMP)
	$(PY) -m pytest -q -p no:cacheprovider tests/test_layers.py

format: $(STAMP)
	$(PY) -m ruff check --fix .
	$(PY) -m ruff format .

bench: $(STAMP)
	$(PY) benchmarks/run_all.py

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache build *.egg-info
