"""The model-area CLI commands: help texts, and bad input as a one-line error with exit 1."""

from pathlib import Path

import pytest
from typer.testing import CliRunner

from llmops.cli import app

runner = CliRunner()


@pytest.mark.parametrize("command", ["evaluate", "promote", "rollback", "run"])
def test_every_option_has_help(command: str) -> None:
    result = runner.invoke(app, [command, "--help"], env={"COLUMNS": "300"})
    assert result.exit_code == 0
    assert "--profile" in result.output and "tiny, cpu or gpu" in result.output


def test_bad_input_is_a_clear_error(
    llmops_home: Path, prefect_harness: None, tmp_path: Path
) -> None:
    rollback = runner.invoke(app, ["rollback", "--profile", "tiny"])
    assert rollback.exit_code == 1 and "error: nothing to roll back" in rollback.output


def test_explain_names_a_missing_evaluation(llmops_home: Path) -> None:
    result = runner.invoke(app, ["explain", "no-such-run", "r1"])
    assert result.exit_code == 1
    assert result.output.startswith("error: no evaluation report for run no-such-run at ")
