from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def share_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("fuzz-share")
    (path / "hello.txt").write_text("hello from the emulator\n")
    return path
