# Two commands do everything on a machine with python3: `make demo` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

.PHONY: install chromium postgres demo test bench ui clean comfyui-check

# uv (pinned, installed by the venv's own pip) installs the pinned set in seconds where pip took 50 s; without
# compiling: compileall then compiles the environment on every core at once (but whenever's modules for newer Pythons,
# which this one never imports and cannot parse).
$(STAMP): pyproject.toml constraints.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check uv==0.13.9
	$(BIN)/uv pip install --python $(BIN)/python --quiet -c constraints.txt -e ".[test]"
	$(BIN)/python -m compileall -q -j 0 -x '/whenever/_typing_3[0-9]+\.py$$' $(VENV)/lib > /dev/null
	touch $(STAMP)

install: $(STAMP)

demo: install
	$(BIN)/reelflow render examples/leviathan --episode 1

# The browser tests drive the system Chromium; a Debian/Ubuntu machine without it gets it from apt.
chromium:
	@test -n "$$REELFLOW_CHROMIUM" || command -v chromium >/dev/null || command -v chromium-browser >/dev/null || \
		($(SUDO) apt-get update -qq && $(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends chromium)

# The studio's Postgres test runs a throwaway PostgreSQL (initdb, pg_ctl: on PATH or in Debian's
# /usr/lib/postgresql/*/bin); a Debian/Ubuntu machine without it gets it from apt, after Chromium (one apt-get at a time).
postgres: | chromium
	@command -v initdb >/dev/null || ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || \
		($(SUDO) apt-get update -qq && $(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends postgresql)

# The Python install and the system packages run side by side; then three workers, a test file each at a time,
# sharing one local Prefect server. Most tests wait on subprocesses and loopback servers, so three workers keep two
# cores busier than two (measured on a clean clone: 383 s against 410 s for the suite).
test:
	$(MAKE) --no-print-directory -j2 install chromium postgres
	$(BIN)/ruff check .
	$(BIN)/python -m pytest -n 3 --dist loadfile

# The quick set (under 5 minutes on an idle machine); each script has a fuller mode (see docs/benchmarks.md).
# The fault scenarios check bytes and payments, not speed: they run beside the episode benchmark at the lowest CPU
# priority, in the CPU it leaves idle; the media timings run alone.
bench: install
	$(BIN)/python bench/quick.py

# reelflow's ComfyUI graphs and client against a real ComfyUI checkout on the CPU (not part of `make test`):
# make comfyui-check COMFYUI_DIR=/path/to/ComfyUI COMFYUI_PYTHON=/path/to/its/venv/bin/python
COMFYUI_PYTHON ?= python3
comfyui-check: install
	COMFYUI_DIR="$(COMFYUI_DIR)" COMFYUI_PYTHON="$(COMFYUI_PYTHON)" $(BIN)/python checks/comfyui.py
	COMFYUI_DIR="$(COMFYUI_DIR)" COMFYUI_PYTHON="$(COMFYUI_PYTHON)" $(BIN)/python checks/gpu_render.py

ui: install
	$(BIN)/reelflow server start

clean:
	rm -rf $(VENV) examples/*/storyboards/assets examples/*/.reelflow
