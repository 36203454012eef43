"""The store's edge functions that other tests reach only through whole flows."""

from pathlib import Path

import fsspec

from llmops import store


def test_local_file_is_the_file_itself_when_local_and_one_fetched_copy_when_remote(tmp_path):
    local = tmp_path / "train.parquet"
    local.write_bytes(b"local split")
    assert store.local_file(str(local), tmp_path / "cache") == local

    remote = "memory://bucket/datasets/abc/train.parquet"
    with fsspec.open(remote, "wb") as f:
        f.write(b"remote split")
    copy = store.local_file(remote, tmp_path / "cache")
    assert copy.read_bytes() == b"remote split" and copy.name == "train.parquet"
    # Fetched once: a second call reads nothing remote (the remote file is gone by then).
    fsspec.filesystem("memory").rm("/bucket/datasets/abc/train.parquet")
    assert store.local_file(remote, tmp_path / "cache") == copy
    assert not list(Path(copy.parent).glob("*.partial"))
