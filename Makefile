# kmodlab: `make demo` runs the main job on the default kernel, `make test` runs every test.
# Both install what they need first (Debian packages, .venv, kernels into the cache).

VENV      := .venv
KMODLAB   := $(VENV)/bin/kmodlab
PYTEST    := $(VENV)/bin/pytest
# The kernel matrix the integration tests run on (arch:series).
MATRIX    ?= x86_64:6.1 x86_64:6.12 arm64:6.1 arm64:6.12

.PHONY: setup demo kernels test test-unit test-integration bench clean-cache

setup:
	@./scripts/setup.sh

demo: setup
	$(KMODLAB) check

kernels: setup
	@for entry in $(MATRIX); do \
	  $(KMODLAB) kernels fetch --arch $${entry%%:*} --kernel $${entry##*:} || exit 1; \
	done

test: setup kernels
	$(PYTEST) tests

test-unit: setup
	$(PYTEST) tests/unit

test-integration: setup kernels
	$(PYTEST) tests/integration

bench: setup kernels
	$(VENV)/bin/python benchmarks/guest_bench.py

clean-cache:
	rm -rf "$${KMODLAB_CACHE:-$${XDG_CACHE_HOME:-$$HOME/.cache}/kmodlab}"
