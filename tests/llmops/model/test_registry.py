"""The MLflow registry edge on a real SQLite store: tags, aliases, promotion, rollback, and
loading the champion in a fresh process."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from model_support import make_tiny_adapter

from llmops.model import registry

NAME = "test-assistant"


@pytest.fixture
def adapter(tmp_path: Path, llmops_home: Path):  # noqa: ANN201
    return make_tiny_adapter(tmp_path / "adapter", scale=0.05)


def register(adapter: tuple, tags: dict[str, str] | None = None) -> str:
    adapter_dir, base = adapter
    return registry.register_adapter(
        NAME, str(adapter_dir), base.ref, base.sha256, None, tags or {}
    )


def test_register_tags_and_challenger(adapter) -> None:  # noqa: ANN001
    _, base = adapter
    version = register(adapter, {"dataset_id": "d1"})
    tags = registry.version_tags(NAME, version)
    assert tags["dataset_id"] == "d1"
    assert tags["base_ref"] == "tiny-random"
    assert tags["base_sha256"] == base.sha256 and len(base.sha256) == 64
    assert registry.alias_version(NAME, registry.CHALLENGER) == version
    assert registry.alias_version(NAME, registry.CHAMPION) is None
    assert registry.resolve_alias(NAME) is None


def test_register_rejects_a_folder_without_adapter(tmp_path: Path, llmops_home: Path) -> None:
    with pytest.raises(FileNotFoundError, match="not a PEFT adapter"):
        registry.register_adapter(NAME, str(tmp_path), "tiny-random", None, None, {})


def test_same_adapter_is_one_version(adapter) -> None:  # noqa: ANN001
    first = register(adapter)
    assert register(adapter) == first


def test_promote_and_rollback_walk_history(tmp_path: Path, llmops_home: Path) -> None:
    v1, v2, v3 = (register(make_tiny_adapter(tmp_path / f"a{i}", i, 0.05)) for i in range(3))
    assert registry.promote_version(NAME, v1) is None
    assert registry.promote_version(NAME, v2) == v1
    assert registry.promote_version(NAME, v3) == v2
    assert registry.alias_version(NAME, registry.PREVIOUS_CHAMPION) == v2

    assert registry.rollback(NAME) == (v3, v2)
    assert registry.alias_version(NAME, registry.CHAMPION) == v2
    assert registry.alias_version(NAME, registry.PREVIOUS_CHAMPION) == v1
    assert registry.version_tags(NAME, v3)["rolled_back_to"] == v2

    assert registry.rollback(NAME) == (v2, v1)
    assert registry.alias_version(NAME, registry.PREVIOUS_CHAMPION) is None
    with pytest.raises(LookupError, match="nothing to roll back"):
        registry.rollback(NAME)
    assert registry.alias_version(NAME, registry.CHAMPION) == v1


def test_champion_resolves_and_loads_in_a_fresh_process(adapter, llmops_home: Path) -> None:  # noqa: ANN001
    version = register(adapter)
    registry.promote_version(NAME, version)

    resolved = registry.resolve_alias(NAME)
    assert resolved is not None and resolved.version == version
    assert (resolved.adapter_dir / "adapter_config.json").exists()
    assert resolved.base_ref == "tiny-random"
    # The adapter is the artifact: kilobytes, not the base model's weights.
    size = sum(f.stat().st_size for f in resolved.adapter_dir.rglob("*") if f.is_file())
    assert size < 200_000

    # A fresh interpreter started outside the checkout loads models:/NAME@champion as pyfunc.
    script = (
        "import json, mlflow; "
        f"m = mlflow.pyfunc.load_model('models:/{NAME}@champion'); "
        "print(json.dumps(m.predict(['How do I reset my password?'], "
        "params={'max_new_tokens': 5})))"
    )
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    out = subprocess.run(
        [sys.executable, "-c", script],
        cwd=llmops_home,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=True,
    )
    answers = json.loads(out.stdout.strip().splitlines()[-1])
    assert len(answers) == 1 and isinstance(answers[0], str)
