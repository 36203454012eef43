"""`llmops finetune`: help texts, bad input as a one-line error (training itself is covered by
tests/flows/test_finetune.py)."""

from pathlib import Path

from typer.testing import CliRunner

from llmops.cli import app

runner = CliRunner()


def test_finetune_help_lists_its_options() -> None:
    result = runner.invoke(app, ["finetune", "--help"], env={"COLUMNS": "300"})
    assert result.exit_code == 0
    options = (
        "--profile",
        "--base-model",
        "--max-steps",
        "--packing",
        "--method",
        "--dpo-reference",
    )
    for option in options:
        assert option in result.output


def test_finetune_bad_dataset_is_a_clear_error(
    llmops_home: Path, prefect_harness: None, tmp_path: Path
) -> None:
    result = runner.invoke(app, ["finetune", str(tmp_path / "missing"), "--profile", "tiny"])
    assert result.exit_code == 1
    assert "error: " in result.output and "is not a prepared dataset" in result.output


def test_a_champion_reference_without_dpo_is_a_clear_error(tmp_path: Path) -> None:
    args = ["finetune", str(tmp_path), "--profile", "tiny", "--dpo-reference", "champion"]
    result = runner.invoke(app, args)
    assert result.exit_code == 1
    assert result.output == (
        "error: invalid FinetuneConfig: Value error, dpo_reference=champion needs method=dpo\n"
    )
