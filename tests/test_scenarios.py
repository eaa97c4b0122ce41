"""Every scenario in scenarios/ runs green, and a wrong expectation is caught."""

import subprocess
import sys

import pytest

from emulator.harness.scenarios import Scenario, find_scenarios, run_scenario

SCENARIOS = find_scenarios()


@pytest.mark.parametrize("scenario", SCENARIOS, ids=[s.name for s in SCENARIOS])
def test_scenario(scenario):
    results = run_scenario(scenario)
    failures = [r for r in results if not r.passed]
    assert not failures, "\n".join(
        f"step {r.number} {r.say}: expected {r.expected!r}, observed {r.observed!r}"
        for r in failures)


def test_a_wrong_expectation_fails_the_run_with_exit_1(tmp_path):
    wrong = tmp_path / "wrong.toml"
    wrong.write_text('''
title = "XP Home refuses the sixth: this file wrongly expects it admitted"
edition = "xp-home"
[[steps]]
do = "smb_logon"
clients = "A1..A6"
expect = "admitted"
''')
    results = run_scenario(Scenario.load(wrong))
    assert results[0].observed == "5 admitted, 1 STATUS_REQUEST_NOT_ACCEPTED (0xC00000D0)"
    assert not results[0].passed
    cli = subprocess.run([sys.executable, "-m", "emulator", "scenario", "run", str(wrong)],
                         capture_output=True, text=True, timeout=120)
    assert cli.returncode == 1 and "FAIL" in cli.stdout


def test_scenario_list_json():
    out = subprocess.run([sys.executable, "-m", "emulator", "scenario", "list", "--json"],
                         capture_output=True, text=True, timeout=60, check=True).stdout
    assert "xp-professional" in out
