"""LoRA adapters at the edge: identify one by its weights, and fetch one from wherever it lives.

An adapter URI is an MLflow URI (`runs:/<run_id>/adapter`, `models:/…`), a store URL
(`s3://…/runs/<key>/adapter`) or a local folder; any host with the tracking server and the
store can fetch it.
"""

import contextlib
import hashlib
import shutil
import tempfile
from pathlib import Path

import mlflow

from llmops import store
from llmops.home import home_path
from llmops.model.loading import file_sha256

MLFLOW_SCHEMES = ("runs:/", "models:/", "mlflow-artifacts:")


def adapter_sha256(adapter_dir: Path) -> str:
    """Hash of an adapter's weights: identifies the adapter whatever folder it sits in."""
    weights = sorted(Path(adapter_dir).glob("adapter_model.*"))
    if not (Path(adapter_dir) / "adapter_config.json").exists() or not weights:
        raise FileNotFoundError(f"{adapter_dir} is not a PEFT adapter folder (no adapter_config)")
    return file_sha256(weights[0])


def fetch_adapter(uri: str) -> Path:
    """A local folder holding the adapter at `uri`; remote adapters are downloaded once into
    <home>/cache/adapters/ (an MLflow run's artifacts and store objects never change)."""
    if not uri.startswith(MLFLOW_SCHEMES) and store.is_local(uri):
        local = Path(store.absolute(uri))
        adapter_sha256(local)  # fails clearly when it is not an adapter
        return local
    target = home_path("cache", "adapters", hashlib.sha256(uri.encode()).hexdigest()[:16])
    if (target / "adapter_config.json").exists():
        return target
    # Downloaded beside the target and renamed, so a half download is never taken for one.
    staging = Path(tempfile.mkdtemp(prefix=".adapter-", dir=target.parent))
    if uri.startswith(MLFLOW_SCHEMES):
        fetched = Path(mlflow.artifacts.download_artifacts(artifact_uri=uri, dst_path=str(staging)))
    else:
        fetched = store.download_dir(uri, staging / "adapter")
    adapter_sha256(fetched)
    with contextlib.suppress(OSError):  # another process fetched it first; its copy is the same
        fetched.rename(target)
    shutil.rmtree(staging, ignore_errors=True)
    return target
