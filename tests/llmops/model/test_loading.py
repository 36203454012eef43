"""Base-model hashes are remembered per file identity: a rerun names the weights without
reading them, and a changed file is hashed anew."""

import os
from pathlib import Path

from llmops.model.loading import base_sha256, cached_file_sha256, file_sha256, resolve_base


def test_a_weights_hash_is_remembered_until_the_file_changes(
    llmops_home: Path, tmp_path: Path
) -> None:
    checkpoint = tmp_path / "checkpoint"
    checkpoint.mkdir()
    weights = checkpoint / "model.safetensors"
    weights.write_bytes(b"a" * 64)
    first = file_sha256(weights)
    assert base_sha256(str(checkpoint)) == resolve_base(str(checkpoint)).sha256 == first
    assert len(list((llmops_home / "cache" / "sha256").glob("*.json"))) == 1

    # Same path, size and mtime: the remembered hash, the file is not read again.
    stat = weights.stat()
    weights.write_bytes(b"b" * 64)
    os.utime(weights, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    assert cached_file_sha256(weights) == first

    # A newer file (what any rewrite of the weights gives) is hashed anew.
    os.utime(weights, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000))
    assert base_sha256(str(checkpoint)) == file_sha256(weights) != first
    assert len(list((llmops_home / "cache" / "sha256").glob("*.json"))) == 1
