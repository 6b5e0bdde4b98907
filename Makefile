# Two commands do everything on a machine with python3: `make demo` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: install demo test bench ui clean

$(STAMP): pyproject.toml constraints.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -c constraints.txt -e ".[test]"
	touch $(STAMP)

install: $(STAMP)

demo: install
	$(BIN)/reelflow render examples/leviathan --episode 1

# Two workers, a test file each at a time: each worker starts its own local Prefect server.
test: install
	$(BIN)/python -m pytest -n 2 --dist loadfile

bench: install
	$(BIN)/python bench/render_cache.py

ui: install
	$(BIN)/reelflow server start

clean:
	rm -rf $(VENV) examples/*/storyboards/assets examples/*/.reelflow
