"""The object store: one URL under which every stage leaves what another host must find.

    LLMOPS_STORE=s3://team-bucket/llmops llmops run      # or `store:` in a flow's profile

It defaults to the project home, so a laptop needs nothing configured. Any fsspec URL works;
S3 credentials and endpoint come from the standard AWS variables (AWS_ENDPOINT_URL included).

    datasets/<dataset_id>/      prepared datasets: manifest.json, train/eval Parquet, rejected
    runs/<run_key>/             fine-tuning: checkpoints/, adapter/, trained.json, mlflow_run_id
    evaluations/<run_id>.json   evaluation reports
    inference/                  the serving inference log and feedback
    feedback/                   feedback exported as training records
    monitoring/                 Evidently drift reports
    watch/seen.json             what the landing watcher has announced
    prefect-results/            Prefect's persisted results (team stack)
    mlflow/                     MLflow artifacts, written through the tracking server (team stack)
"""

import hashlib
import json
import os
import posixpath
from pathlib import Path
from typing import Any

import fsspec
from fsspec.implementations.local import LocalFileSystem

from llmops.home import project_home

STORE_ENV = "LLMOPS_STORE"


def store_root(configured: str | None = None) -> str:
    """The store URL: the configured one, else $LLMOPS_STORE, else the project home."""
    return absolute(configured or os.environ.get(STORE_ENV) or str(project_home()))


def absolute(url: str) -> str:
    """A URL that means the same from any working directory: local paths become absolute."""
    url = url.rstrip("/")
    return url if "://" in url else str(Path(url).expanduser().resolve())


def join(root: str, *parts: str) -> str:
    """`root/part/...` for local paths and URLs alike."""
    return posixpath.join(root, *parts) if parts else root


def is_local(url: str) -> bool:
    """True when the URL names a folder on this host's disk."""
    return isinstance(fsspec.core.url_to_fs(url)[0], LocalFileSystem)


def browser_url(url: str) -> str:
    """A link to `url` for a Prefect artifact: file:// for a local path, the URL itself else."""
    return Path(url).as_uri() if is_local(url) else url


def _fs(url: str) -> tuple[fsspec.AbstractFileSystem, str]:
    return fsspec.core.url_to_fs(url)


def exists(url: str) -> bool:
    fs, path = _fs(url)
    return fs.exists(path)


def read_bytes(url: str) -> bytes:
    fs, path = _fs(url)
    return fs.cat_file(path)


def write_bytes(url: str, data: bytes) -> None:
    """Write one object (a single PUT on object stores, so readers never see half of it)."""
    fs, path = _fs(url)
    fs.makedirs(posixpath.dirname(path), exist_ok=True)
    fs.pipe_file(path, data)


def read_text(url: str) -> str:
    return read_bytes(url).decode("utf-8")


def write_text(url: str, text: str) -> None:
    write_bytes(url, text.encode("utf-8"))


def read_json(url: str) -> Any:
    return json.loads(read_text(url))


def write_json(url: str, value: Any) -> None:
    write_text(url, json.dumps(value, indent=2, sort_keys=True, default=str))


def list_names(url: str) -> list[str]:
    """Names of the entries directly under a folder (none when it does not exist)."""
    fs, path = _fs(url)
    if not fs.exists(path):
        return []
    return sorted(posixpath.basename(p.rstrip("/")) for p in fs.ls(path, detail=False))


def upload_dir(local: Path, url: str) -> None:
    """Copy a local folder's files to `url` (replacing files of the same name)."""
    fs, path = _fs(url)
    for file in sorted(p for p in local.rglob("*") if p.is_file()):
        target = posixpath.join(path, file.relative_to(local).as_posix())
        fs.makedirs(posixpath.dirname(target), exist_ok=True)
        fs.put_file(str(file), target)


def download_dir(url: str, local: Path) -> Path:
    """Copy the files under `url` into the local folder `local`; returns it."""
    fs, path = _fs(url)
    local.mkdir(parents=True, exist_ok=True)
    for remote in fs.find(path):
        target = local / posixpath.relpath(remote, path)
        target.parent.mkdir(parents=True, exist_ok=True)
        fs.get_file(remote, str(target))
    return local


def local_file(url: str, folder: Path) -> Path:
    """The file at `url` on this host's disk: itself when local, else a copy in `folder`, fetched
    once. Only for files that never change under their URL (a dataset's splits: its folder is
    named by its content)."""
    fs, path = _fs(url)
    if isinstance(fs, LocalFileSystem):
        return Path(path)
    target = folder / hashlib.sha256(url.encode()).hexdigest()[:16] / posixpath.basename(path)
    if not target.exists():
        target.parent.mkdir(parents=True, exist_ok=True)
        partial = target.with_name(f"{target.name}.partial")  # a killed fetch is never taken
        fs.get_file(path, str(partial))
        partial.replace(target)
    return target


def remove(url: str) -> None:
    """Delete a file or folder, if it exists."""
    fs, path = _fs(url)
    if fs.exists(path):
        fs.rm(path, recursive=True)
