"""Tasks of the landing-zone watcher: list, diff against what was seen, announce new files."""

import hashlib
import json
from pathlib import Path
from typing import Any

import fsspec
from prefect import task
from prefect.events import emit_event

from llmops.data.ingest import FORMATS


@task(retries=2, retry_delay_seconds=[2, 10])
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
    path = Path(state_file)
    return json.loads(path.read_text()) if path.exists() else {}


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
    path = Path(state_file)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(seen, indent=1, sort_keys=True))
