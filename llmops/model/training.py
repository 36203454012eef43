"""LoRA fine-tuning core: chat-formatted examples with response-only labels, padding-free
batching, and a resumable transformers Trainer run (supervised), or a trl DPOTrainer run on
preference pairs (DPO). Plain Python, no Prefect.

Batching: `packing=True` uses transformers' DataCollatorWithFlattening. A batch becomes one
row of concatenated examples whose position_ids restart at 0 per example; with the KV cache
off, the Llama attention masks derive a block-diagonal causal mask from those position_ids, so
examples never attend to each other (the tests check packed loss == per-example loss). We chose
it over greedy bin packing into fixed blocks because it wastes no tokens on padding at
all and needs no custom attention mask. `packing=False` pads each batch to its longest example.
"""

import logging
import time
from collections.abc import Callable, Iterable, Iterator, Sequence, Sized
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from datasets import Dataset, IterableDataset, load_dataset
from peft import LoraConfig, PeftModel, get_peft_model, prepare_model_for_kbit_training
from transformers import (
    AutoModelForCausalLM,
    DataCollatorForSeq2Seq,
    DataCollatorWithFlattening,
    PreTrainedModel,
    PreTrainedTokenizerBase,
    Trainer,
    TrainerCallback,
    TrainerControl,
    TrainerState,
    TrainingArguments,
)

from llmops import store
from llmops.model.cost import BudgetExceededError, ComputeCost, CostSettings, TrainingBudget
from llmops.model.loading import BaseModel, load_model, pick_device
from llmops.model.run_store import (
    CHECKPOINT,
    COMPLETE_MARKER,
    KEEP_CHECKPOINTS,
    TrainingRun,
    complete_steps,
)
from llmops.model.train_settings import LoraSettings, PreferenceSettings, TrainSettings
from llmops.records import Message, prompt_messages

logger = logging.getLogger(__name__)

IGNORE_INDEX = -100

# Encoded examples (input_ids, labels) or DPO's preference rows: a list, or a `datasets`
# dataset (memory-mapped Arrow, or streamed).
TrainingExamples = list[dict[str, Any]] | Dataset | IterableDataset


@dataclass(frozen=True)
class Precision:
    """Device and floating-point mode, decided in one place."""

    device: torch.device
    bf16: bool
    fp16: bool

    @property
    def dtype(self) -> torch.dtype:
        if self.bf16:
            return torch.bfloat16
        return torch.float16 if self.fp16 else torch.float32


def pick_precision(device: torch.device | None = None, cpu_bf16: bool = False) -> Precision:
    """bf16 on CUDA when supported (fp16 otherwise); on CPU fp32, or with `cpu_bf16` bf16
    where the CPU has native bf16 matmuls (AVX512-BF16 or AMX; fp32 elsewhere)."""
    device = device or pick_device()
    if device.type != "cuda":
        native = torch.cpu._is_avx512_bf16_supported() or torch.cpu._is_amx_tile_supported()
        return Precision(device, bf16=cpu_bf16 and native, fp16=False)
    bf16 = torch.cuda.is_bf16_supported()
    return Precision(device, bf16=bf16, fp16=not bf16)


def render_example(tokenizer: PreTrainedTokenizerBase, messages: list[Message]) -> tuple[str, str]:
    """The chat-formatted prompt (up to the final assistant header) and the text after it."""
    prompt = tokenizer.apply_chat_template(
        prompt_messages(messages), add_generation_prompt=True, tokenize=False
    )
    full = tokenizer.apply_chat_template(list(messages), tokenize=False)
    if not full.startswith(prompt):
        raise ValueError("the chat template does not render the prompt as a prefix of the dialog")
    return prompt, full[len(prompt) :]


def assemble_example(
    prompt_ids: list[int], response_ids: list[int], max_seq_len: int
) -> dict[str, list[int]] | None:
    """Input ids and labels (-100 on the prompt), truncated; None when no label is left."""
    input_ids = (prompt_ids + response_ids)[:max_seq_len]
    labels = ([IGNORE_INDEX] * len(prompt_ids) + response_ids)[:max_seq_len]
    if all(label == IGNORE_INDEX for label in labels):
        return None
    return {"input_ids": input_ids, "labels": labels}


def encode_example(
    tokenizer: PreTrainedTokenizerBase, messages: list[Message], max_seq_len: int
) -> dict[str, list[int]] | None:
    """Token ids of the chat-formatted conversation, with labels only on the final assistant
    turn (-100 on the prompt); None when truncation leaves no response token to learn from."""
    prompt, response = render_example(tokenizer, messages)
    prompt_ids = tokenizer(prompt, add_special_tokens=False)["input_ids"]
    response_ids = tokenizer(response, add_special_tokens=False)["input_ids"]
    return assemble_example(prompt_ids, response_ids, max_seq_len)


def encode_examples(
    tokenizer: PreTrainedTokenizerBase, conversations: Iterable[list[Message]], max_seq_len: int
) -> tuple[list[dict[str, list[int]]], int]:
    """Encode every conversation; return the usable examples and how many were dropped."""
    encoded = [encode_example(tokenizer, list(m), max_seq_len) for m in conversations]
    kept = [e for e in encoded if e is not None]
    return kept, len(encoded) - len(kept)


def encode_batch(
    batch: dict[str, list[Any]], tokenizer: PreTrainedTokenizerBase, max_seq_len: int
) -> dict[str, list[list[int]]]:
    """encode_example over a batch of records (one tokenizer call per side, in Rust), leaving
    out the conversations with no label left: the `Dataset.map(batched=True)` function."""
    rendered = [render_example(tokenizer, list(m)) for m in batch["messages"]]
    prompt_ids = tokenizer([p for p, _ in rendered], add_special_tokens=False)["input_ids"]
    response_ids = tokenizer([r for _, r in rendered], add_special_tokens=False)["input_ids"]
    encoded = [
        assemble_example(p, r, max_seq_len) for p, r in zip(prompt_ids, response_ids, strict=True)
    ]
    kept = [e for e in encoded if e is not None]
    return {"input_ids": [e["input_ids"] for e in kept], "labels": [e["labels"] for e in kept]}


def encode_dataset(
    tokenizer: PreTrainedTokenizerBase, records: Dataset | IterableDataset, max_seq_len: int
) -> Dataset | IterableDataset:
    """Encoded training examples (input_ids, labels) of records with `messages`, through
    `datasets`: an Arrow-backed dataset is tokenized once and cached beside its Arrow files
    under the map's fingerprint (a rerun reads the cache), a streamed one lazily per batch."""
    return records.map(
        encode_batch,
        batched=True,
        fn_kwargs={"tokenizer": tokenizer, "max_seq_len": max_seq_len},
        remove_columns=records.column_names,
    )


def load_records_dataset(
    data_files: str,
    cache_dir: Path,
    streaming: bool = False,
    columns: Sequence[str] = ("messages",),
) -> Dataset | IterableDataset:
    """The `columns` of a records Parquet file (local or an fsspec URL) as a memory-mapped
    Arrow dataset converted once into `cache_dir`, or streamed from the file."""
    return load_dataset(
        "parquet",
        data_files=data_files,
        split="train",
        columns=list(columns),
        cache_dir=str(cache_dir),
        streaming=streaming,
    )


def preference_examples(records: Dataset) -> Dataset:
    """trl's conversational preference rows from pair records: the prompt turns, the chosen
    answer (the final assistant turn of `messages`) and the `rejected` answer; mapped in
    batches through `datasets` (Arrow-backed and cached by fingerprint, like the SFT path)."""
    if "rejected" not in records.column_names or None in records["rejected"]:
        raise ValueError("DPO needs preference pairs: every record must have a `rejected` answer")
    return records.map(_preference_batch, batched=True, remove_columns=records.column_names)


def _preference_batch(batch: dict[str, list]) -> dict[str, list[list[Message]]]:
    """`preference_examples` of one batch of records."""
    return {
        "prompt": [prompt_messages(list(m)) for m in batch["messages"]],
        "chosen": [[m[-1]] for m in batch["messages"]],
        "rejected": [[{"role": "assistant", "content": r}] for r in batch["rejected"]],
    }


def make_collator(
    tokenizer: PreTrainedTokenizerBase, packing: bool
) -> Callable[[list[dict[str, Any]]], dict[str, Any]]:
    """Padding-free flattening when packing, else right padding with -100 labels.

    Our labels are built before collation, so EOS (== pad for SmolLM2) stays a trained target.
    """
    if packing:
        return DataCollatorWithFlattening(return_position_ids=True)
    tokenizer.padding_side = "right"
    return DataCollatorForSeq2Seq(tokenizer, label_pad_token_id=IGNORE_INDEX, padding=True)


class LabelLogitsOnly:
    """Wraps a collator so the model projects onto the vocabulary only at positions whose next
    token is a label: prompt positions (most of a chat example) skip the lm_head matmul and the
    softmax over the 49k-token vocabulary, which the loss then ignores anyway.

    Adds `logits_to_keep` (bool, batch x seq: the model flattens the kept hidden states) and
    `shift_labels` (the targets of those positions, in the same order); the model's causal-LM
    loss, summed over the kept positions and divided by the Trainer's label count, is the loss
    over all positions (tested)."""

    def __init__(self, collate: Callable[[list[dict[str, Any]]], dict[str, Any]]) -> None:
        self.collate = collate

    def __call__(self, features: list[dict[str, Any]]) -> dict[str, Any]:
        batch = self.collate(features)
        # position t predicts token t+1; the last position predicts nothing
        targets = torch.nn.functional.pad(batch["labels"], (0, 1), value=IGNORE_INDEX)[..., 1:]
        keep = targets != IGNORE_INDEX
        return {**batch, "logits_to_keep": keep, "shift_labels": targets[keep]}


def build_lora_model(
    base: BaseModel,
    lora: LoraSettings,
    precision: Precision,
    qlora: bool = False,
    start_adapter: Path | None = None,
) -> PreTrainedModel:
    """The base model with a fresh LoRA adapter, or with `start_adapter` loaded trainable (its
    own LoRA settings then win over `lora`); 4-bit QLoRA only on CUDA with bitsandbytes."""
    if qlora and precision.device.type == "cuda":
        from transformers import BitsAndBytesConfig  # needs bitsandbytes: CUDA-only path

        quantization = BitsAndBytesConfig(
            load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_compute_dtype=precision.dtype
        )
        model = AutoModelForCausalLM.from_pretrained(
            base.path, quantization_config=quantization, dtype=precision.dtype
        )
        model = prepare_model_for_kbit_training(model)
    else:
        model = load_model(base, precision.device, precision.dtype)
    # Without a KV cache the attention masks read example boundaries from position_ids; with
    # one (the default) flattened examples would silently attend to each other.
    model.config.use_cache = False
    if start_adapter is not None:
        return PeftModel.from_pretrained(model, str(start_adapter), is_trainable=True)
    config = LoraConfig(
        r=lora.rank,
        lora_alpha=lora.alpha,
        lora_dropout=lora.dropout,
        target_modules=lora.target_modules,
        task_type="CAUSAL_LM",
    )
    return get_peft_model(model, config)


@dataclass
class CheckpointMirror(TrainerCallback):
    """After each Trainer save: upload the checkpoint, mark it complete, prune old ones, and
    keep the upload cost (seconds and bytes per save) for the run's metrics."""

    run: TrainingRun
    upload_seconds: list[float] = field(default_factory=list)
    upload_bytes: list[int] = field(default_factory=list)

    def on_save(
        self, args: TrainingArguments, state: TrainerState, control: TrainerControl, **_: Any
    ) -> None:
        name = f"checkpoint-{state.global_step}"
        local = self.run.local_checkpoints / name
        started = time.perf_counter()
        target = store.join(self.run.checkpoints_uri, name)
        store.upload_dir(local, target)
        store.write_json(store.join(target, COMPLETE_MARKER), {"step": state.global_step})
        self.upload_seconds.append(time.perf_counter() - started)
        self.upload_bytes.append(sum(f.stat().st_size for f in local.rglob("*") if f.is_file()))
        self._prune()
        logger.info("checkpoint %s mirrored to %s", name, target)

    def _prune(self) -> None:
        """Keep the newest complete checkpoints; drop everything older, complete or not."""
        oldest_kept = complete_steps(self.run)[-KEEP_CHECKPOINTS:][0]
        for name in store.list_names(self.run.checkpoints_uri):
            match = CHECKPOINT.match(name)
            if match and int(match.group(1)) < oldest_kept:
                store.remove(store.join(self.run.checkpoints_uri, name))

    def metrics(self) -> dict[str, float]:
        """Mean upload cost per save of this process's saves (none when it saved nothing)."""
        if not self.upload_seconds:
            return {}
        saves = len(self.upload_seconds)
        return {
            "checkpoint_saves": float(saves),
            "checkpoint_upload_seconds": sum(self.upload_seconds) / saves,
            "checkpoint_upload_bytes": sum(self.upload_bytes) / saves,
        }


class ThroughputCallback(TrainerCallback):
    """Adds tokens/s (response-and-prompt tokens, no padding) to every log and forwards the
    logs to `sink`; the Trainer's own MLflow integration opens its own runs, we log to ours."""

    def __init__(self, sink: Callable[[dict[str, float], int], None] | None = None) -> None:
        self.sink = sink
        self._last: tuple[float, int] | None = None

    def on_train_begin(
        self, args: TrainingArguments, state: TrainerState, control: TrainerControl, **_: Any
    ) -> None:
        self._last = (time.perf_counter(), state.num_input_tokens_seen)

    def on_log(
        self,
        args: TrainingArguments,
        state: TrainerState,
        control: TrainerControl,
        logs: dict[str, float] | None = None,
        **_: Any,
    ) -> None:
        if logs is None or self._last is None:
            return
        now, tokens = time.perf_counter(), state.num_input_tokens_seen
        if "loss" in logs and now > self._last[0]:
            logs["tokens_per_second"] = (tokens - self._last[1]) / (now - self._last[0])
        self._last = (now, tokens)
        if self.sink is not None:
            numbers = {k: float(v) for k, v in logs.items() if isinstance(v, int | float)}
            self.sink(numbers, state.global_step)


class CostMeter(TrainerCallback):
    """Measures a training run's cost (device time of the training loop x devices, non-padding
    tokens) on top of what earlier attempts of the run spent, reports it to `sink` at every
    log and at the end, and enforces `budget` (see the module docstring)."""

    def __init__(
        self,
        settings: CostSettings,
        budget: TrainingBudget | None = None,
        seconds_per_step: float | None = None,
        spent_before: ComputeCost | None = None,
        sink: Callable[[ComputeCost, int], None] | None = None,
    ) -> None:
        self.settings = settings
        self.budget = budget if budget is not None and budget.is_set else None
        self.known_seconds_per_step = seconds_per_step
        self.spent_before = spent_before or ComputeCost(currency=settings.currency)
        self.sink = sink
        self.device, self.devices = "cpu", 1
        self._start: tuple[float, int, int] | None = None  # (time, tokens seen, step)

    def on_train_begin(
        self, args: TrainingArguments, state: TrainerState, control: TrainerControl, **_: Any
    ) -> None:
        self.device = args.device.type
        # DDP: world_size processes of one device each; DataParallel: one process, n_gpu devices.
        self.devices = args.world_size * max(1, args.n_gpu)
        self._start = (time.perf_counter(), state.num_input_tokens_seen, state.global_step)
        if self.budget is None:
            return
        self._stop_if_over(
            self.spent_before, state, "earlier attempts of this run spent", "stopped"
        )
        if self.known_seconds_per_step is not None:
            self._check_projection(state, self.known_seconds_per_step, "an earlier finished run")

    def on_step_end(
        self, args: TrainingArguments, state: TrainerState, control: TrainerControl, **_: Any
    ) -> None:
        if self.budget is None or self._start is None:
            return
        self._stop_if_over(self.spent(state), state, "spent", "aborted")
        steps = state.global_step - self._start[2]
        if self.known_seconds_per_step is None and steps == self.budget.warmup_steps:
            measured = self.seconds_per_step(state) or 0.0
            self._check_projection(state, measured, f"the first {steps} steps")

    def on_log(
        self, args: TrainingArguments, state: TrainerState, control: TrainerControl, **_: Any
    ) -> None:
        self._report(state)

    def on_train_end(
        self, args: TrainingArguments, state: TrainerState, control: TrainerControl, **_: Any
    ) -> None:
        self._report(state)

    def _report(self, state: TrainerState) -> None:
        if self.sink is not None and self._start is not None:
            self.sink(self.spent(state), state.global_step)

    def spent(self, state: TrainerState) -> ComputeCost:
        """What the run has cost so far: earlier attempts plus this one."""
        if self._start is None:
            return self.spent_before
        started, tokens, _ = self._start
        now = ComputeCost.measured(
            self.device,
            self.devices,
            time.perf_counter() - started,
            state.num_input_tokens_seen - tokens,
            self.settings,
        )
        return self.spent_before.plus(now)

    def seconds_per_step(self, state: TrainerState) -> float | None:
        """Wall seconds per optimizer step in this attempt (None before its first step)."""
        if self._start is None or state.global_step <= self._start[2]:
            return None
        return (time.perf_counter() - self._start[0]) / (state.global_step - self._start[2])

    def _stop_if_over(self, spent: ComputeCost, state: TrainerState, what: str, verb: str) -> None:
        """Stop now when `spent` is over the budget."""
        assert self.budget is not None
        limit = self.budget.exceeded_limit(spent)
        if limit is not None:
            raise BudgetExceededError(
                f"budget: {what} {spent.line()}, over {limit}; {verb} at step "
                f"{state.global_step} of {state.max_steps}",
                spent,
                state.global_step,
            )

    def _check_projection(self, state: TrainerState, seconds_per_step: float, source: str) -> None:
        """Stop now when what is spent plus the remaining steps at `seconds_per_step` would go
        over the budget."""
        assert self.budget is not None
        spent = self.spent(state)
        remaining = max(0, state.max_steps - state.global_step)
        projected = spent.plus(
            ComputeCost.measured(
                self.device, self.devices, remaining * seconds_per_step, 0, self.settings
            )
        )
        limit = self.budget.exceeded_limit(projected)
        if limit is not None:
            raise BudgetExceededError(
                f"budget: projected {projected.device_seconds:.1f} device-s, "
                f"{projected.estimated:.4f} {projected.currency} ({spent.device_seconds:.1f} "
                f"spent + {remaining} steps x {seconds_per_step:.2f} s/step x {self.devices} "
                f"device(s), s/step from {source}) exceeds {limit}; "
                f"stopped at step {state.global_step} of {state.max_steps}",
                spent,
                state.global_step,
            )


def make_trainer(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    examples: TrainingExamples,
    settings: TrainSettings,
    precision: Precision,
    output_dir: Path,
    callbacks: list[TrainerCallback],
    preference: PreferenceSettings | None = None,
) -> Trainer:
    """A Trainer on encoded examples, or with `preference` a DPOTrainer on preference rows,
    that checkpoints every `save_every` steps into `output_dir`."""
    common: dict[str, Any] = dict(
        output_dir=str(output_dir),
        max_steps=settings.max_steps,
        per_device_train_batch_size=settings.batch_size,
        gradient_accumulation_steps=settings.grad_accum,
        learning_rate=settings.learning_rate,
        warmup_steps=settings.warmup_ratio,
        lr_scheduler_type="cosine",
        logging_steps=settings.log_every,
        save_strategy="steps",
        save_steps=settings.save_every,
        save_total_limit=2,
        seed=settings.seed,
        data_seed=settings.seed,
        bf16=precision.bf16,
        fp16=precision.fp16,
        use_cpu=precision.device.type == "cpu",
        report_to="none",
        remove_unused_columns=False,
        include_num_input_tokens_seen="non_padding",
        dataloader_num_workers=0,
        torch_compile=settings.torch_compile,
        # A streamed dataset's batches would otherwise be cut per process along dim 0 after
        # collation, which cuts LabelLogitsOnly's flat `shift_labels` too; without dispatch each
        # process reads its own examples and collates them itself.
        accelerator_config={"dispatch_batches": False},
    )
    if preference is None:
        collator = make_collator(tokenizer, settings.packing)
        if settings.label_logits_only:
            collator = LabelLogitsOnly(collator)
        return Trainer(
            model=model,
            args=TrainingArguments(**common),
            train_dataset=examples,
            data_collator=collator,
            processing_class=tokenizer,
            callbacks=callbacks,
        )
    # Imported here: trl takes seconds to import, and only DPO runs need it.
    from trl import DPOConfig, DPOTrainer

    # trl tokenizes the pairs itself (labels on the answer, like ours); it pads (its padding-free
    # mode is off since its DPO refactor), so `packing` does not apply. Checkpointing stays off
    # like our SFT runs (trl turns it on by default). Given a PeftModel, DPOTrainer copies the
    # trainable adapter into a frozen "ref" adapter and scores the reference with it.
    args = DPOConfig(
        **common,
        beta=preference.beta,
        max_length=preference.max_length,
        gradient_checkpointing=False,
    )
    return DPOTrainer(
        model=model,
        args=args,
        # A job's examples that crossed to another process as rows come as a list.
        train_dataset=examples if isinstance(examples, Dataset) else Dataset.from_list(examples),
        processing_class=tokenizer,
        callbacks=callbacks,
    )


@contextmanager
def torch_threads(count: int | None) -> Iterator[None]:
    """torch's intra-op thread count set to `count` for the block (None: left as it is); the
    setting is process-wide, so it is put back after."""
    previous = torch.get_num_threads()
    if count is not None:
        torch.set_num_threads(count)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


def train_lora(
    base: BaseModel,
    tokenizer: PreTrainedTokenizerBase,
    examples: TrainingExamples,
    lora: LoraSettings,
    settings: TrainSettings,
    checkpoints_dir: Path,
    adapter_dir: Path,
    resume_from: Path | None = None,
    callbacks: list[TrainerCallback] | None = None,
    precision: Precision | None = None,
    preference: PreferenceSettings | None = None,
) -> dict[str, Any]:
    """Train (resuming from the checkpoint folder `resume_from` when given), checkpointing into
    `checkpoints_dir`; save the adapter alone to `adapter_dir`; return the training metrics.
    Supervised on encoded examples, or DPO on preference rows when `preference` is given."""
    precision = precision or pick_precision(cpu_bf16=settings.cpu_bf16)
    torch.manual_seed(settings.seed)
    start = preference.start_adapter if preference else None
    model = build_lora_model(base, lora, precision, settings.qlora, start)
    trainer = make_trainer(
        model,
        tokenizer,
        examples,
        settings,
        precision,
        checkpoints_dir,
        callbacks or [],
        preference,
    )
    started = time.perf_counter()
    with torch_threads(settings.num_threads):
        output = trainer.train(resume_from_checkpoint=str(resume_from) if resume_from else None)
    wall = time.perf_counter() - started
    # Only the trained adapter: DPO's frozen "ref" copy would otherwise be saved beside it.
    # Under DDP every process holds the same adapter; one writes it (llmops/model/distributed.py).
    if trainer.is_world_process_zero():
        model.save_pretrained(adapter_dir, selected_adapters=["default"])
    tokens = trainer.state.num_input_tokens_seen - trainer._initial_num_input_tokens_seen
    return {
        "train_loss": float(output.training_loss),
        "global_step": int(output.global_step),
        "resumed_from_step": _checkpoint_step(resume_from),
        "tokens_seen": int(trainer.state.num_input_tokens_seen),
        "train_seconds": wall,
        "tokens_per_second": tokens / wall if wall > 0 else 0.0,
        "trainable_parameters": sum(p.numel() for p in model.parameters() if p.requires_grad),
        # a streamed dataset has no length: it is read as training goes
        **(
            {"examples": len(trainer.train_dataset)}
            if isinstance(trainer.train_dataset, Sized)
            else {}
        ),
        **_last_reward_metrics(trainer.state),
    }


def _last_reward_metrics(state: TrainerState) -> dict[str, float]:
    """DPO's last logged reward margin and accuracy (chosen vs rejected, policy vs reference);
    none for a supervised run."""
    logged = [log for log in state.log_history if "rewards/margins" in log]
    if not logged:
        return {}
    last = logged[-1]
    return {
        "reward_margin": float(last["rewards/margins"]),
        "reward_accuracy": float(last["rewards/accuracies"]),
    }


def _checkpoint_step(checkpoint: Path | None) -> int:
    """The step a checkpoint folder (checkpoint-<step>) was saved at; 0 for none."""
    return int(checkpoint.name.rsplit("-", 1)[1]) if checkpoint else 0
