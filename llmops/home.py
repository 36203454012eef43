"""The project home: one folder for every local store, so no server needs starting by hand.

Layout (all created on demand):
    prefect/      PREFECT_HOME (prefect.db, result storage) of ephemeral runs and `llmops up`
    stack/        what `llmops up` started (stack.json) and its logs
    mlflow.db     MLflow tracking + registry store (SQLite)
    mlartifacts/  MLflow artifacts
    datasets/     versioned datasets written by `llmops prepare`
    models/       converted base-model checkpoints (GGUF -> safetensors cache)
    runs/         fine-tuning checkpoints, keyed by run fingerprint
    inference/    the serving inference log and feedback
    monitoring/   Evidently reports
"""

import os
from pathlib import Path

HOME_ENV = "LLMOPS_HOME"


def project_home() -> Path:
    """Return the project home: $LLMOPS_HOME, or ./.llmops of the working directory."""
    return Path(os.environ.get(HOME_ENV, ".llmops")).expanduser().resolve()


def home_path(*parts: str) -> Path:
    """Return a path under the project home, creating its parent folder."""
    path = project_home().joinpath(*parts)
    path.parent.mkdir(parents=True, exist_ok=True)
    return path


def mlflow_tracking_uri() -> str:
    """MLflow's store: $MLFLOW_TRACKING_URI when set, else SQLite in the project home."""
    return os.environ.get("MLFLOW_TRACKING_URI") or f"sqlite:///{home_path('mlflow.db')}"


def configure_environment() -> None:
    """Point Prefect, MLflow and Hugging Face at local, offline defaults; explicit env wins.

    Must run before prefect is imported: Prefect reads its settings at import time.
    """
    home = project_home()
    home.mkdir(parents=True, exist_ok=True)
    defaults = {
        # Ephemeral Prefect keeps its SQLite db and results here unless a server is configured.
        "PREFECT_HOME": str(home / "prefect"),
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS": "120",
        "MLFLOW_TRACKING_URI": mlflow_tracking_uri(),
        "GX_ANALYTICS_ENABLED": "false",
        "DO_NOT_TRACK": "1",
        # Offline by default: a hub lookup otherwise retries for a minute on a machine without DNS.
        # Set HF_HUB_OFFLINE=0 to use models from the Hugging Face hub.
        "HF_HUB_OFFLINE": "1",
        "TOKENIZERS_PARALLELISM": "false",
        # Artifacts always through the tracking server: a tracking server on S3 otherwise hands
        # clients presigned URLs of its own S3 endpoint, which other hosts may not reach (a
        # MinIO on the control host's private address). A host then needs the tracking URL only.
        "MLFLOW_ENABLE_PROXY_MULTIPART_DOWNLOAD": "false",
        "MLFLOW_ENABLE_PROXY_MULTIPART_UPLOAD": "false",
    }
    # While `llmops up` runs, commands run their flows through its servers (the UI shows them).
    from llmops.stack import client_defaults

    defaults.update(client_defaults())
    for key, value in defaults.items():
        os.environ.setdefault(key, value)
