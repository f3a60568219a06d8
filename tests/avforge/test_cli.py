"""The console script: the contract's verbs are there; unbuilt verbs fail plainly."""

from __future__ import annotations

import subprocess
import sys

from typer.testing import CliRunner

from avforge.cli import app

CONTRACT_VERBS = ("curate", "mix", "train", "evaluate", "report", "demo")


def test_help_lists_contract_verbs():
    result = CliRunner().invoke(app, ["--help"])
    assert result.exit_code == 0
    for verb in CONTRACT_VERBS:
        assert f" {verb} " in result.output


def test_console_script_runs():
    exe = [sys.executable, "-c", "from avforge.cli import main; main()", "--version"]
    out = subprocess.run(exe, capture_output=True, text=True, check=True)
    assert out.stdout.startswith("avforge ")
