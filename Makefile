# Shortcuts for developers; the README's commands are scripts/demo and scripts/test, which need
# nothing but bash on a fresh Debian machine (they install everything else).

VENV      := .venv
PYTEST    := $(VENV)/bin/pytest

.PHONY: setup demo test test-unit test-integration bench clean-cache

setup:
	@./scripts/setup.sh

demo:
	./scripts/demo

test:
	./scripts/test

test-unit: setup
	$(PYTEST) tests/unit

test-integration:
	./scripts/test tests/integration

bench: setup
	$(VENV)/bin/python benchmarks/guest_bench.py
	$(VENV)/bin/python benchmarks/modules_bench.py
	$(VENV)/bin/python benchmarks/plugin_bench.py
	$(VENV)/bin/python benchmarks/grading_bench.py

clean-cache:
	rm -rf "$${KMODLAB_CACHE:-$${XDG_CACHE_HOME:-$$HOME/.cache}/kmodlab}"
