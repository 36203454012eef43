"""`llmops run-flow`: a module without the flow it is named after is a one-line error."""

import textwrap
from pathlib import Path

import pytest
from typer.testing import CliRunner

import flows
from llmops.cli import app

runner = CliRunner()

# Written the way an author who renamed the flow function but not the file would leave it.
MISNAMED = '''
from typing import ClassVar

from prefect import flow

from llmops.config import FlowConfig


class MisnamedCheckConfig(FlowConfig):
    profile_dir: ClassVar[str] = "misnamed_check"


@flow
def partner_check(config: MisnamedCheckConfig) -> None:
    """Named unlike its file."""
'''


def test_run_flow_without_a_flow_of_that_name_is_a_one_line_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # flows/ is a package; a second folder on its path plays the author's new file, so the
    # shared checkout stays untouched.
    (tmp_path / "misnamed_check.py").write_text(textwrap.dedent(MISNAMED))
    monkeypatch.setattr(flows, "__path__", [*flows.__path__, str(tmp_path)])
    result = runner.invoke(app, ["run-flow", "misnamed_check", "--profile", "tiny"])
    assert result.exit_code == 1
    assert result.output == (
        "error: flows/misnamed_check.py has no flow function named 'misnamed_check'\n"
    )
    assert result.exception is None or isinstance(result.exception, SystemExit)


def test_run_flow_of_an_unknown_module_is_a_one_line_error() -> None:
    result = runner.invoke(app, ["run-flow", "no_such_flow"])
    assert result.exit_code == 1
    assert result.output == "error: No module named 'flows.no_such_flow'\n"
