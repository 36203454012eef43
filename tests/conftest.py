"""Session-wide test setup: a throwaway project home, offline Hugging Face, real Prefect.

Environment is set before anything imports prefect, because Prefect reads settings on import.
"""

import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

_SESSION_HOME = tempfile.mkdtemp(prefix="llmops-test-home-")
os.environ["LLMOPS_HOME"] = _SESSION_HOME
os.environ.pop("MLFLOW_TRACKING_URI", None)
os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["HF_DATASETS_OFFLINE"] = "1"

from llmops.home import configure_environment  # noqa: E402

configure_environment()


@pytest.fixture(scope="session")
def prefect_harness() -> Iterator[None]:
    """A real, temporary Prefect server + database for the whole session (about 13 s to start)."""
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(server_startup_timeout=180):
        yield


@pytest.fixture
def llmops_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A fresh project home per test, with its own MLflow SQLite store."""
    home = tmp_path / "llmops-home"
    home.mkdir()
    monkeypatch.setenv("LLMOPS_HOME", str(home))
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{home / 'mlflow.db'}")
    return home


@pytest.fixture(scope="session")
def s3_server() -> Iterator[str]:
    """moto's S3 server on loopback, one per session (the stand-in for a team's object store)."""
    from moto.server import ThreadedMotoServer
    from net_support import free_port

    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port)
    server.start()
    yield f"http://127.0.0.1:{port}"
    server.stop()


@pytest.fixture
def s3_endpoint(s3_server: str, monkeypatch: pytest.MonkeyPatch) -> str:
    """The standard AWS variables pointed at the S3 stand-in, as a team host would set them."""
    from net_support import s3_environment

    for key, value in s3_environment(s3_server).items():
        monkeypatch.setenv(key, value)
    return s3_server
