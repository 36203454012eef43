"""Prepared datasets at the edge: open a dataset folder that `prepare` wrote, on any host.

A dataset folder (local or in the object store) holds manifest.json, train.parquet,
eval.parquet and rejected.jsonl; the manifest is written last, so a folder without one is
never taken for a dataset.
"""

import io

import pandas as pd

from llmops import store
from llmops.outputs import DatasetRef


def read_dataset(uri: str) -> DatasetRef:
    """The dataset at `uri` (its folder); a clear error when it is not a prepared dataset."""
    uri = store.absolute(uri)
    manifest_url = store.join(uri, "manifest.json")
    if not store.exists(manifest_url):
        raise FileNotFoundError(
            f"{uri} is not a prepared dataset (no manifest.json): run `llmops prepare` on your "
            "data first and pass the folder it prints"
        )
    manifest = store.read_json(manifest_url)
    return DatasetRef(dataset_id=manifest["dataset_id"], uri=uri, counts=manifest["counts"])


def read_split(dataset: DatasetRef, split: str) -> pd.DataFrame:
    """One split ("train" or "eval") of a dataset as records (record_id, source, messages)."""
    return pd.read_parquet(io.BytesIO(store.read_bytes(dataset.split_uri(split))))
