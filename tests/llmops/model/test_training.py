"""The fine-tuning core on the tiny random model: masking, packing, resume, adapter-only output."""

from pathlib import Path

import numpy as np
import pytest
import torch
from datasets import Dataset
from model_support import planted_pairs, tiny_records
from peft import PeftModel
from transformers import TrainerCallback

from llmops.model.generation import generate_batch
from llmops.model.loading import load_model, load_tokenizer, resolve_base
from llmops.model.metrics import preference_scores
from llmops.model.training import (
    IGNORE_INDEX,
    LabelLogitsOnly,
    LoraSettings,
    PreferenceSettings,
    TrainSettings,
    build_lora_model,
    encode_dataset,
    encode_example,
    encode_examples,
    load_records_dataset,
    make_collator,
    pick_precision,
    preference_examples,
    torch_threads,
    train_lora,
)
from llmops.records import instruction_to_messages

LORA = LoraSettings(rank=4, alpha=8, dropout=0.0, target_modules="all-linear")


def settings(**overrides: object) -> TrainSettings:
    values = dict(
        learning_rate=1e-3,
        max_steps=6,
        batch_size=4,
        grad_accum=1,
        warmup_ratio=0.0,
        packing=True,
        save_every=2,
        log_every=1,
        seed=0,
    )
    return TrainSettings(**{**values, **overrides})


@pytest.fixture(scope="module")
def tokenizer():
    return load_tokenizer(resolve_base("tiny-random"))


def test_labels_cover_only_the_response(tokenizer) -> None:
    messages = instruction_to_messages("What is 2+2?", "Four.", system="Be brief.")
    example = encode_example(tokenizer, messages, max_seq_len=512)
    assert example is not None
    learned = [
        t for t, label in zip(example["input_ids"], example["labels"], strict=True) if label != -100
    ]
    assert example["labels"][0] == IGNORE_INDEX
    # the response and its end-of-turn token (== pad for SmolLM2) are trained, nothing else
    assert tokenizer.decode(learned).startswith("Four.<|im_end|>")
    assert "What is" not in tokenizer.decode(learned)
    first = example["labels"].index(next(v for v in example["labels"] if v != IGNORE_INDEX))
    assert all(v != IGNORE_INDEX for v in example["labels"][first:])


def test_examples_without_response_tokens_are_dropped(tokenizer) -> None:
    long_prompt = instruction_to_messages("word " * 400, "ok")
    kept, dropped = encode_examples(tokenizer, [long_prompt, instruction_to_messages("a", "b")], 64)
    assert dropped == 1 and len(kept) == 1 and len(kept[0]["input_ids"]) <= 64


def test_packed_loss_equals_per_example_loss(tokenizer) -> None:
    """Flattened examples must not attend to each other: the summed token loss of one packed
    row equals the sum of each example's loss computed alone."""
    # a fresh adapter (B = 0) leaves the outputs equal to the base model's
    model = build_lora_model(resolve_base("tiny-random"), LORA, pick_precision()).eval()
    records = tiny_records(3)["messages"]
    examples, _ = encode_examples(tokenizer, [list(m) for m in records], 256)
    # vary the lengths so that a leak across examples would change the result
    examples[1] = encode_example(
        tokenizer, instruction_to_messages("x " * 30, "a longer answer " * 5), 256
    )

    def summed_loss(batch: dict) -> float:
        logits = model(**{k: v for k, v in batch.items() if k != "labels"}).logits[:, :-1]
        labels = batch["labels"][:, 1:]
        return torch.nn.functional.cross_entropy(
            logits.reshape(-1, logits.shape[-1]), labels.reshape(-1), reduction="sum"
        ).item()

    with torch.no_grad():
        packed = summed_loss(make_collator(tokenizer, packing=True)(examples))
        alone = sum(summed_loss(make_collator(tokenizer, packing=False)([e])) for e in examples)
        padded = summed_loss(make_collator(tokenizer, packing=False)(examples))
    assert packed == pytest.approx(alone, rel=1e-5)
    assert padded == pytest.approx(alone, rel=1e-5)


def test_label_logits_only_computes_the_same_loss_on_fewer_positions(tokenizer) -> None:
    """Projecting onto the vocabulary only where the next token is a label leaves the Trainer's
    loss (summed over labels / label count) unchanged, packed and padded."""
    model = build_lora_model(resolve_base("tiny-random"), LORA, pick_precision()).eval()
    examples, _ = encode_examples(tokenizer, [list(m) for m in tiny_records(4)["messages"]], 256)
    labels = sum(sum(v != IGNORE_INDEX for v in e["labels"]) for e in examples)
    for packing in (True, False):
        collate = make_collator(tokenizer, packing)
        full, only = collate(examples), LabelLogitsOnly(collate)(examples)
        assert int(only["logits_to_keep"].sum()) == len(only["shift_labels"]) == labels
        with torch.no_grad():
            expected = model(**full, num_items_in_batch=labels)
            got = model(**only, num_items_in_batch=labels)
        assert got.logits.shape == (labels, expected.logits.shape[-1])
        assert got.loss.item() == pytest.approx(expected.loss.item(), rel=1e-6)


def test_cpu_speed_settings_are_opt_in_and_scoped() -> None:
    cpu = torch.device("cpu")
    native = torch.cpu._is_avx512_bf16_supported() or torch.cpu._is_amx_tile_supported()
    assert pick_precision(cpu).dtype == torch.float32
    assert pick_precision(cpu, cpu_bf16=True).bf16 is native
    before = torch.get_num_threads()
    with torch_threads(1):
        assert torch.get_num_threads() == 1
    assert torch.get_num_threads() == before


def test_datasets_path_encodes_like_the_list_and_reuses_its_cache(tmp_path: Path, tokenizer):
    records = tiny_records(12)
    # one record whose answer does not fit: dropped by both paths
    records.loc[3, "messages"] = instruction_to_messages("word " * 400, "ok")
    records.to_parquet(tmp_path / "train.parquet")
    expected, dropped = encode_examples(tokenizer, [list(m) for m in records["messages"]], 64)
    assert dropped == 1

    def encoded(streaming: bool):  # noqa: ANN202
        raw = load_records_dataset(str(tmp_path / "train.parquet"), tmp_path / "hf", streaming)
        return encode_dataset(tokenizer, raw, 64)

    mapped = encoded(streaming=False)
    assert [dict(e) for e in mapped] == expected and len(mapped) == 11
    (cache,) = [Path(f["filename"]) for f in mapped.cache_files]
    written = cache.stat().st_mtime_ns
    # a rerun reads the tokenized Arrow file written by the first: nothing is tokenized again
    assert [Path(f["filename"]) for f in encoded(streaming=False).cache_files] == [cache]
    assert cache.stat().st_mtime_ns == written
    assert [dict(e) for e in encoded(streaming=True)] == expected


def test_a_streamed_dataset_trains(tmp_path: Path, tokenizer) -> None:
    tiny_records(8).to_parquet(tmp_path / "train.parquet")
    raw = load_records_dataset(str(tmp_path / "train.parquet"), tmp_path / "hf", streaming=True)
    metrics = train_lora(
        resolve_base("tiny-random"),
        tokenizer,
        encode_dataset(tokenizer, raw, 256),
        LORA,
        settings(max_steps=2, save_every=10, label_logits_only=True),
        tmp_path / "checkpoints",
        tmp_path / "adapter",
    )
    assert metrics["global_step"] == 2 and "examples" not in metrics
    assert metrics["tokens_seen"] > 0


class KillAt(TrainerCallback):
    """Simulates a killed process: raises once training reaches `step`."""

    def __init__(self, step: int) -> None:
        self.step = step

    def on_step_end(self, args, state, control, **kwargs):  # noqa: ANN001, ANN201
        if state.global_step == self.step:
            raise KeyboardInterrupt(f"killed at step {self.step}")


def test_killed_run_resumes_from_its_last_checkpoint(tmp_path: Path, tokenizer) -> None:
    base = resolve_base("tiny-random")
    examples, _ = encode_examples(tokenizer, [list(m) for m in tiny_records(12)["messages"]], 256)
    checkpoints, adapter = tmp_path / "checkpoints", tmp_path / "adapter"
    with pytest.raises(KeyboardInterrupt):
        train_lora(
            base, tokenizer, examples, LORA, settings(), checkpoints, adapter, None, [KillAt(5)]
        )
    assert (checkpoints / "checkpoint-4").is_dir()
    assert not adapter.exists()

    resumed = train_lora(
        base,
        tokenizer,
        examples,
        LORA,
        settings(),
        checkpoints,
        adapter,
        checkpoints / "checkpoint-4",
    )
    assert resumed["resumed_from_step"] == 4
    assert resumed["global_step"] == 6
    saved = {p.name for p in adapter.iterdir()}
    assert saved == {"adapter_config.json", "adapter_model.safetensors", "README.md"}


@pytest.mark.slow
def test_real_smollm2_loads_generates_and_trains(tmp_path: Path) -> None:
    """The real base model: converted from the GGUF, answers a prompt, takes LoRA steps."""
    base = resolve_base("smollm2-135m-instruct")
    tokenizer = load_tokenizer(base)
    model = build_lora_model(base, LORA, pick_precision())
    [(text, _, completion_tokens)] = generate_batch(
        model, tokenizer, [instruction_to_messages("What is the capital of France?", "")[:-1]], 8
    )
    assert completion_tokens > 0 and "Paris" in text
    examples, _ = encode_examples(tokenizer, [list(m) for m in tiny_records(8)["messages"]], 128)
    small = settings(max_steps=3, batch_size=2, save_every=3, log_every=1)
    metrics = train_lora(
        base, tokenizer, examples, LORA, small, tmp_path / "checkpoints", tmp_path / "adapter"
    )
    assert metrics["global_step"] == 3 and metrics["train_loss"] > 0
    adapter_bytes = sum(p.stat().st_size for p in (tmp_path / "adapter").iterdir())
    assert adapter_bytes < 5_000_000  # rank-4 adapter: about 1.9 MB, the base is 540 MB


@pytest.mark.slow
def test_dpo_on_smollm2_learns_the_planted_preference_on_held_out_pairs(tmp_path: Path) -> None:
    """Every rejected answer names the wrong product (AcmeCloud, not Zephyr Desk). After three
    DPO steps against the base, the adapter prefers the chosen answers of pairs whose prompts
    it never saw, by the margin the evaluation computes (metrics.preference_scores)."""
    base = resolve_base("smollm2-135m-instruct")
    tokenizer = load_tokenizer(base)
    train, held_out = planted_pairs(12), planted_pairs(4, offset=12)
    assert not set(train["messages"].map(str)) & set(held_out["messages"].map(str))
    chats, rejected = [list(m) for m in held_out["messages"]], held_out["rejected"].tolist()
    model = load_model(base, torch.device("cpu")).eval()
    before = preference_scores(model, tokenizer, chats, rejected)

    # Small and quick on two cores: rank 8 on the attention of the top 10 of 30 layers (the
    # backward pass stops there), two pairs a step, a high learning rate.
    lora = LoraSettings(8, 16, 0.0, r".*layers\.2[0-9]\.self_attn\.(q_proj|v_proj)")
    small = settings(learning_rate=1e-2, max_steps=3, batch_size=2, save_every=3, packing=False)
    trained = train_lora(
        base,
        tokenizer,
        preference_examples(Dataset.from_pandas(train, preserve_index=False)),
        lora,
        small,
        tmp_path / "checkpoints",
        tmp_path / "adapter",
        preference=PreferenceSettings(beta=0.1, max_length=256),
    )
    after = preference_scores(
        PeftModel.from_pretrained(model, str(tmp_path / "adapter")).eval(),
        tokenizer,
        chats,
        rejected,
    )

    margin = {
        "before": np.mean(before["preference_margin"]),
        "after": np.mean(after["preference_margin"]),
    }
    accuracy = {
        "before": np.mean(before["preference_accuracy"]),
        "after": np.mean(after["preference_accuracy"]),
    }
    print(
        f"planted preference, 4 held-out pairs: margin {margin['before']:+.2f} -> "
        f"{margin['after']:+.2f} nats, accuracy {accuracy['before']:.2f} -> "
        f"{accuracy['after']:.2f}; 3 DPO steps in {trained['train_seconds']:.1f} s "
        f"(train reward margin {trained['reward_margin']:.2f})"
    )
    # The base prefers the shorter wrong name on every held-out pair; the adapter never does.
    assert accuracy == {"before": 0.0, "after": 1.0}
    assert margin["after"] - margin["before"] > 10.0
    assert trained["reward_accuracy"] == 1.0 and trained["reward_margin"] > 0
