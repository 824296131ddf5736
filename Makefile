# Two targets do everything on a fresh machine: `make demo` and `make test`.
# Set-up is idempotent: each step is skipped when already done.
PY      := .venv/bin/python
PIP     := .venv/bin/pip
# Pinned: an unpinned torch pulls several GB of CUDA builds; 2.13.0 is the local CPU wheel.
TORCH   := torch==2.13.0
FMNIST  := /usr/share/datasets/fashion-mnist
STAMP   := .venv/.cnnlab-installed

.PHONY: demo test setup system-packages clean

demo: setup
	.venv/bin/cnnlab demo
	@echo
	@echo "Look inside the demo run in a browser (the explorer, on 127.0.0.1):"
	@echo "    .venv/bin/cnnlab serve runs/demo"
	@echo "Test the notes' claims, each with a verdict (about 3 minutes):"
	@echo "    .venv/bin/cnnlab lab --quick --out runs/lab"

test: setup $(STAMP).dev
	.venv/bin/ruff check src tests benchmarks
	.venv/bin/ruff format --check src tests benchmarks
	.venv/bin/pytest

setup: system-packages $(STAMP)

# Debian packages: the Fashion-MNIST files, Chromium (report tests) and, where Debian's own
# python3 lacks it, python3-venv (`python3 -m venv` needs ensurepip). Only where apt-get
# exists and we are root; skipped when already present.
system-packages:
	@need=""; \
	[ -e $(FMNIST) ] || need="$$need dataset-fashion-mnist"; \
	command -v chromium >/dev/null 2>&1 || need="$$need chromium"; \
	python3 -c 'import ensurepip, venv' 2>/dev/null || need="$$need python3-venv"; \
	if [ -n "$$need" ]; then \
	  if command -v apt-get >/dev/null 2>&1 && [ "$$(id -u)" = 0 ]; then \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$need >/dev/null; \
	  else echo "note: could not install$$need (needs apt-get and root)"; fi; \
	fi

.venv/bin/python:
	python3 -m venv .venv

$(STAMP): .venv/bin/python pyproject.toml
	$(PIP) install -q "$(TORCH)"
	$(PIP) install -q -e .
	touch $@

$(STAMP).dev: $(STAMP)
	$(PIP) install -q "$(TORCH)" -e ".[dev]"
	touch $@

clean:
	rm -rf .venv build src/*.egg-info .pytest_cache .hypothesis
