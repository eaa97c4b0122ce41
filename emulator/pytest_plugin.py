"""The plugin moved to `emulator.harness.pytest_plugin`; an install made before the move
still names this module in its pytest11 entry point (reinstall to drop it)."""

from emulator.harness.pytest_plugin import *  # noqa: F401,F403
