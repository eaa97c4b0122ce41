# The two commands the README names. Both install what they need first.
PYTHON ?= python3
VENV ?= .venv

.PHONY: run test

# Run the emulator with its documented defaults, as any user: the package and what it
# needs go into a virtual environment in the checkout (no root, no system packages).
run:
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/python -m pip install -q -e .
	$(VENV)/bin/python -m emulator

# Run the whole test suite, installing the Debian clients and Python test extras first.
test:
	bash scripts/install-test-deps
	$(PYTHON) -m pytest -q
