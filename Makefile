# The two commands the README names. Both install what they need first.
PYTHON ?= python3

.PHONY: run test

# Run the emulator with its documented defaults (works as a non-root user).
run:
	$(PYTHON) -m pip install -q -e .
	$(PYTHON) -m emulator

# Run the whole test suite, installing the Debian clients and Python test extras first.
test:
	bash scripts/install-test-deps
	$(PYTHON) -m pytest -q
