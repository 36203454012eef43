"""`llmops new-flow` in a copy of this project: the scaffolded flow's own test and the
deployment contract tests pass untouched, and a bad or taken name is a clear error."""

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
LLMOPS = str(Path(sys.executable).parent / "llmops")
NOT_SOURCE = shutil.ignore_patterns(
    ".git", ".venv", ".llmops", "*.egg-info", "__pycache__", ".pytest_cache", ".ruff_cache"
)


@pytest.fixture
def project(tmp_path: Path) -> Path:
    copy = tmp_path / "project"
    shutil.copytree(ROOT, copy, ignore=NOT_SOURCE)
    return copy


def new_flow(project: Path, name: str) -> subprocess.CompletedProcess:
    command = [LLMOPS, "new-flow", name, "--project-dir", str(project)]
    return subprocess.run(command, capture_output=True, text=True, timeout=300)


def test_scaffolded_flow_passes_its_test_and_the_contract_tests(project: Path):
    made = new_flow(project, "partner_feed_check")
    assert made.returncode == 0, made.stderr
    deployments = yaml.safe_load((project / "prefect.yaml").read_text())["deployments"]
    entry = next(d for d in deployments if d["name"] == "partner-feed-check")
    assert entry["entrypoint"] == "flows/partner_feed_check.py:partner_feed_check"
    assert entry["work_pool"]["name"] == "cpu"

    tests = ["tests/flows/test_partner_feed_check.py", "tests/test_contracts.py"]
    # The copy's own code first, exactly as a checkout with the new flow in it would run.
    env = {**os.environ, "PYTHONPATH": str(project)}
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *tests],
        cwd=project,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert " passed" in done.stdout and "failed" not in done.stdout

    ran = subprocess.run(
        [LLMOPS, "run-flow", "partner_feed_check", "--profile", "tiny"],
        cwd=project,
        env={**env, "LLMOPS_HOME": str(project / ".llmops")},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert ran.returncode == 0, ran.stderr[-3000:]
    assert '"total": 367' in ran.stdout  # every record of the bundled sample, accounted for


def test_bad_or_taken_names_are_clear_errors(project: Path):
    assert "not a snake_case name" in new_flow(project, "Feed-Check").stderr
    taken = new_flow(project, "prepare")
    assert taken.returncode == 1 and "exists already" in taken.stderr
    assert not (project / "deployments" / "authored.yaml").exists()
