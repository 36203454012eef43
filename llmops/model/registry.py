"""The MLflow model registry at the edge: adapter versions, aliases, promotion and rollback.

One registered model (name from config) holds every candidate as a version. Aliases:
    challenger         the latest registered candidate
    champion           what serving loads (`models:/<name>@champion`)
    previous-champion  the champion it replaced, so `llmops rollback` is one step
Each promoted version carries the tag `replaced_version`, so repeated rollbacks walk back
through the promotion history.
"""

import importlib.metadata
import json
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

import mlflow
from mlflow.exceptions import MlflowException
from mlflow.models import infer_signature

from llmops.home import home_path
from llmops.model.adapter_pyfunc import AdapterModel
from llmops.model.adapters import adapter_sha256, fetch_adapter
from llmops.tracking import ensure_experiment, mlflow_client

CHAMPION = "champion"
CHALLENGER = "challenger"
PREVIOUS_CHAMPION = "previous-champion"
REGISTRY_EXPERIMENT = "llmops-registry"
# What a fresh environment needs to load the pyfunc; pinned to what we run, because MLflow's
# inferred list leaves torch/transformers out and adds strays.
_PINNED = ("torch", "transformers", "peft", "accelerate", "safetensors", "pandas")
_PACKAGE_DIR = Path(__file__).resolve().parent.parent


@dataclass(frozen=True)
class RegisteredAdapter:
    """A registered adapter version, downloaded to a local folder, with its base model."""

    name: str
    version: str
    adapter_dir: Path
    base_ref: str
    base_sha256: str | None


def register_adapter(
    model_name: str,
    adapter_uri: str,
    base_ref: str,
    base_sha256: str | None,
    run_id: str | None,
    tags: dict[str, str],
) -> str:
    """Log the adapter at `adapter_uri` as a pyfunc under `run_id` (or a new run), register it,
    tag it, alias it `challenger`; return its version. The same adapter registered twice is one
    version."""
    adapter_dir = fetch_adapter(adapter_uri)
    adapter_sha = adapter_sha256(adapter_dir)
    existing = mlflow_client().search_model_versions(
        f"name='{model_name}' and tags.adapter_sha256='{adapter_sha}'"
    )
    if existing:
        version = str(existing[0].version)
        set_alias(model_name, CHALLENGER, version)
        return version
    with tempfile.TemporaryDirectory() as scratch:
        base_file = Path(scratch) / "base_ref.json"
        base_file.write_text(json.dumps({"ref": base_ref, "sha256": base_sha256}))
        # MLflow keeps the folder's own name under artifacts/; a fixed name lets resolve_alias
        # find the adapter of any version.
        staged = shutil.copytree(adapter_dir, Path(scratch) / "adapter")
        experiment_id = None if run_id else ensure_experiment(REGISTRY_EXPERIMENT)
        with mlflow.start_run(run_id=run_id, experiment_id=experiment_id, nested=run_id is None):
            info = mlflow.pyfunc.log_model(
                name="adapter",
                python_model=AdapterModel(),
                artifacts={"adapter": str(staged), "base_ref": str(base_file)},
                # The whole package travels with the model, so a fresh process without this
                # checkout can still import AdapterModel and the loading code.
                code_paths=[str(_PACKAGE_DIR)],
                pip_requirements=[f"{p}=={importlib.metadata.version(p)}" for p in _PINNED],
                signature=infer_signature(
                    ["question"], ["answer"], params={"max_new_tokens": 128, "temperature": 0.0}
                ),
                registered_model_name=model_name,
            )
    version = str(info.registered_model_version)
    all_tags = {
        "base_ref": base_ref,
        "base_sha256": base_sha256 or "",
        "adapter_sha256": adapter_sha,
        **tags,
    }
    tag_version(model_name, version, all_tags)
    set_alias(model_name, CHALLENGER, version)
    return version


def code_version() -> str:
    """The git commit of this checkout (with "-dirty" for local changes), else the package
    version: what a version tag needs to rebuild the candidate."""
    try:
        sha = _git("rev-parse", "HEAD")
        dirty = _git("status", "--porcelain", "--untracked-files=no")
    except (OSError, subprocess.SubprocessError):
        return f"llmops=={importlib.metadata.version('llmops')}"
    return f"{sha}-dirty" if dirty else sha


def _git(*args: str) -> str:
    return subprocess.run(
        ["git", *args], cwd=_PACKAGE_DIR, capture_output=True, text=True, check=True, timeout=10
    ).stdout.strip()


def set_alias(model_name: str, alias: str, version: str) -> None:
    """Point `alias` of `model_name` at `version`."""
    mlflow_client().set_registered_model_alias(model_name, alias, version)


def alias_version(model_name: str, alias: str) -> str | None:
    """The version an alias points at, or None when the model or the alias does not exist."""
    try:
        return str(mlflow_client().get_model_version_by_alias(model_name, alias).version)
    except MlflowException:
        return None


def version_tags(model_name: str, version: str) -> dict[str, str]:
    """The tags recorded on one version."""
    return dict(mlflow_client().get_model_version(model_name, version).tags)


def version_weights(model_name: str, version: str) -> tuple[str, str | None, str]:
    """What names a version's weights, from its tags: (base ref, base sha256, adapter sha256)."""
    tags = version_tags(model_name, version)
    return tags["base_ref"], tags.get("base_sha256") or None, tags["adapter_sha256"]


def tag_version(model_name: str, version: str, tags: dict[str, str]) -> None:
    """Record tags (decision, reasons, ...) on a version."""
    client = mlflow_client()
    for key, value in tags.items():
        client.set_model_version_tag(model_name, version, key, str(value))


def promote_version(model_name: str, version: str) -> str | None:
    """Make `version` champion, keeping the one it replaces as previous-champion; return that."""
    previous = alias_version(model_name, CHAMPION)
    if previous == version:
        return None
    if previous is not None:
        set_alias(model_name, PREVIOUS_CHAMPION, previous)
        tag_version(model_name, version, {"replaced_version": previous})
    set_alias(model_name, CHAMPION, version)
    return previous


def champion_chain(model_name: str) -> list[str]:
    """The champion, then each version it replaced, then the one that replaced, and so on: the
    history `llmops rollback` walks back through (`replaced_version` tags)."""
    chain: list[str] = []
    version = alias_version(model_name, CHAMPION)
    while version and version not in chain:  # a cycle would be a corrupt history: stop there
        chain.append(version)
        version = version_tags(model_name, version).get("replaced_version")
    return chain


def rollback(model_name: str) -> tuple[str, str]:
    """Move champion back to previous-champion; return (rolled-back version, new champion).

    previous-champion then moves one step further back (to what the restored version had
    replaced), or is removed when there is no older champion.
    """
    current = alias_version(model_name, CHAMPION)
    previous = alias_version(model_name, PREVIOUS_CHAMPION)
    if current is None or previous is None:
        raise LookupError(
            f"nothing to roll back for {model_name!r}: champion={current}, "
            f"previous-champion={previous}"
        )
    client = mlflow_client()
    set_alias(model_name, CHAMPION, previous)
    older = version_tags(model_name, previous).get("replaced_version")
    if older:
        set_alias(model_name, PREVIOUS_CHAMPION, older)
    else:
        client.delete_registered_model_alias(model_name, PREVIOUS_CHAMPION)
    tag_version(model_name, current, {"rolled_back": "true", "rolled_back_to": previous})
    return current, previous


def resolve_alias(model_name: str, alias: str = CHAMPION) -> RegisteredAdapter | None:
    """The adapter an alias points at, downloaded once into the project home; None if unset."""
    version = alias_version(model_name, alias)
    return None if version is None else resolve_version(model_name, version)


def resolve_version(model_name: str, version: str) -> RegisteredAdapter:
    """One version's adapter, downloaded once into the project home."""
    tags = version_tags(model_name, version)
    target = home_path("registry", model_name, version)
    if not (target / "artifacts" / "adapter" / "adapter_config.json").exists():
        target.mkdir(parents=True, exist_ok=True)
        mlflow.artifacts.download_artifacts(
            artifact_uri=f"models:/{model_name}/{version}", dst_path=str(target)
        )
    return RegisteredAdapter(
        name=model_name,
        version=version,
        adapter_dir=target / "artifacts" / "adapter",
        base_ref=tags["base_ref"],
        base_sha256=tags.get("base_sha256") or None,
    )
