"""Tasks of the landing-zone watcher: list, diff against what was seen, announce new files."""

import hashlib
from typing import Any

import fsspec
from prefect import task
from prefect.events import emit_event

from llmops import store
from llmops.data.ingest import FORMATS
from tasks.policy import STORE_RETRIES


@task(**STORE_RETRIES)
def list_landing_files(landing: str, storage_options: dict[str, Any]) -> dict[str, str]:
    """Every data file under `landing` with its version tag: the ETag on object stores, else a
    sha256 of the content (mtimes change on copies; content does not)."""
    fs, root = fsspec.core.url_to_fs(landing, **storage_options)
    protocol = landing.split("://")[0] + "://" if "://" in landing else ""
    files = {}
    for path in sorted(p for p in fs.find(root) if p.endswith(FORMATS)):
        tag = fs.info(path).get("ETag") or hashlib.sha256(fs.cat_file(path)).hexdigest()
        files[protocol + path] = str(tag).strip('"')
    return files


@task
def load_seen(state_file: str) -> dict[str, str]:
    """What earlier runs announced (path -> version tag)."""
    return store.read_json(state_file) if store.exists(state_file) else {}


@task
def emit_landed_events(new_files: dict[str, str], landing: str) -> int:
    """Emit `llmops.dataset.landed` once per new or changed file; returns how many."""
    for path, tag in new_files.items():
        emit_event(
            event="llmops.dataset.landed",
            resource={"prefect.resource.id": f"llmops.dataset.{tag[:16]}", "llmops.path": path},
            payload={"path": path, "version": tag, "landing": landing},
        )
    return len(new_files)


@task
def save_seen(state_file: str, seen: dict[str, str]) -> None:
    """Remember what has been announced, so restarts and re-listings never re-fire."""
    store.write_json(state_file, seen)
