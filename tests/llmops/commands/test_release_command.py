"""`llmops release start|status|stop` against the test Prefect server and MLflow on SQLite:
clear one-line errors, a running release shown with its evidence, an audited stop."""

from pathlib import Path
from typing import Any

import pytest
from release_support import serve_traffic
from typer.testing import CliRunner

from llmops.cli import app
from llmops.governance.audit import AuditLog
from llmops.model import registry
from llmops.release import read_release
from llmops.tracking import mlflow_client

pytestmark = pytest.mark.slow


@pytest.fixture
def log_root(tmp_path: Path, llmops_home: Path, prefect_harness: None) -> Path:
    return tmp_path / "inference"


def test_cli_start_status_stop(log_root: Path) -> None:
    name = "release-cli"
    runner = CliRunner()

    def llmops(*args: str) -> Any:
        command = ["release", *args, "--profile", "tiny", "--registered-model", name]
        return runner.invoke(app, command, env={"LLMOPS_STORE": str(log_root.parent)})

    assert "has no challenger" in llmops("start").output
    mlflow_client().create_registered_model(name)
    version = str(mlflow_client().create_model_version(name, source="file:///x").version)
    registry.set_alias(name, registry.CHAMPION, version)
    registry.set_alias(name, registry.CHALLENGER, version)
    same = llmops("start")
    assert same.exit_code == 1 and "already the champion" in same.output

    challenger = str(mlflow_client().create_model_version(name, source="file:///y").version)
    registry.set_alias(name, registry.CHALLENGER, challenger)
    started = llmops("start", "--mode", "canary", "--share", "0.25")
    assert started.exit_code == 0, started.output
    assert f"canary release of v{challenger} to 25% of users" in started.output
    again = llmops("start")
    assert again.exit_code == 1 and "already running" in again.output

    serve_traffic(log_root, "challenger", challenger, 3, liked=1)
    status = llmops("status")
    assert '"state": "running"' in status.output and "| challenger | v2 | 3 |" in status.output
    assert "rule now: running" in status.output

    stopped = llmops("stop")
    assert stopped.exit_code == 0 and "stopped" in stopped.output
    assert read_release(name).state == "stopped"
    assert "no release is running" in llmops("stop").output
    assert [e.action for e in AuditLog().entries(name)] == ["release.started", "release.stopped"]
