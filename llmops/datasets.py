"""Prepared datasets at the edge: open a dataset folder that `prepare` wrote, on any host.

A dataset folder (local or in the object store) holds manifest.json, train.parquet,
eval.parquet and rejected.jsonl; the manifest is written last, so a folder without one is
never taken for a dataset.
"""

import io

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

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
    return DatasetRef(
        dataset_id=manifest["dataset_id"],
        uri=uri,
        counts=manifest["counts"],
        slices=manifest.get("slices", []),
        eda_report=store.join(uri, manifest["eda_report"]) if manifest.get("eda_report") else None,
    )


# Metadata is a string map: a Parquet struct would get one field per key any record has (and
# cannot be written at all when no record of a split has a key).
METADATA_TYPE = pa.map_(pa.string(), pa.string())


def split_table(records: pd.DataFrame) -> pa.Table:
    """A split's records as the Arrow table its Parquet file holds. A preference pair's
    `rejected` answer is a string even where no record of these has one: inferred from the
    values alone it would be null-typed, and a file begun with such a part cannot take the
    pairs of a later part."""
    table = pa.Table.from_pandas(
        records.drop(columns="metadata", errors="ignore"), preserve_index=False
    )
    if "rejected" in records:
        index = table.schema.get_field_index("rejected")
        table = table.set_column(index, "rejected", table["rejected"].cast(pa.string()))
    if "metadata" in records:
        values = [list(m.items()) for m in records["metadata"]]
        table = table.append_column("metadata", pa.array(values, type=METADATA_TYPE))
    return table.select(list(records.columns))


def encode_split(records: pd.DataFrame) -> bytes:
    """A split's records as Parquet bytes (what `read_split` reads back)."""
    buffer = io.BytesIO()
    pq.write_table(split_table(records), buffer)
    return buffer.getvalue()


def read_split(dataset: DatasetRef, split: str) -> pd.DataFrame:
    """One split ("train" or "eval") of a dataset as records: record_id, source, messages, and
    `rejected` and `metadata` (a dict) when the dataset has them (see llmops.records)."""
    frame = pd.read_parquet(io.BytesIO(store.read_bytes(dataset.split_uri(split))))
    if "metadata" in frame:
        frame["metadata"] = frame["metadata"].map(dict)
    return frame
