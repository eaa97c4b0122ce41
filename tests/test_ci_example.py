"""The README's any-language example runs: a shell script that starts a lab in the
background, waits for its ready file, drives the admin API with curl and smbclient, and
stops it."""

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = ROOT / "examples" / "ci-smoke.sh"


@pytest.mark.skipif(not (shutil.which("curl") and shutil.which("smbclient")),
                    reason="curl and smbclient are needed")
def test_the_shell_example_runs():
    env = {**os.environ, "SMBRDP_EMU": f"{sys.executable} -m emulator"}
    result = subprocess.run(["bash", str(SCRIPT)], capture_output=True, text=True,
                            timeout=120, env=env, cwd=ROOT)
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.strip().endswith("ci-smoke: ok")


def test_the_readme_actions_step_runs_that_script():
    readme = (ROOT / "README.md").read_text()
    step = re.search(r"```yaml\n(.*?)```", readme, re.S)
    assert step and "bash examples/ci-smoke.sh" in step.group(1)
