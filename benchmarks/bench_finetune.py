"""Fine-tuning throughput: our Prefect flow vs a plain transformers Trainer + peft script, and
padding-free packing vs padding, on the same model, data and settings, in the same run.

    .venv/bin/python benchmarks/bench_finetune.py                          # tiny random model
    .venv/bin/python benchmarks/bench_finetune.py --model smollm2-135m-instruct --steps 8

The data is variable-length on purpose (answers from 1 to ~60 words), which is where padding
wastes compute. Tokens/s counts real (non-padding) tokens only, so the packed and padded
figures are comparable. Each measurement gets a fresh run folder: nothing resumes or is reused.
"""

import argparse
import os
import random
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ["LLMOPS_HOME"] = tempfile.mkdtemp(prefix="llmops-bench-")
os.environ.pop("MLFLOW_TRACKING_URI", None)

from llmops.home import configure_environment  # noqa: E402

configure_environment()

import json  # noqa: E402

import pandas as pd  # noqa: E402
import torch  # noqa: E402
from peft import LoraConfig, get_peft_model  # noqa: E402
from transformers import (  # noqa: E402
    AutoModelForCausalLM,
    DataCollatorWithFlattening,
    Trainer,
    TrainingArguments,
)

from flows.finetune import FinetuneConfig, finetune  # noqa: E402
from llmops.model.loading import load_tokenizer, resolve_base  # noqa: E402
from llmops.model.training import encode_examples, train_lora  # noqa: E402
from llmops.records import instruction_to_messages  # noqa: E402

WORDS = ["open", "settings", "choose", "billing", "press", "save", "export", "invoice", "backup"]


def write_variable_length_dataset(root: Path, n: int, seed: int = 0) -> Path:
    """A prepared-dataset folder whose answers vary from 1 to ~60 words."""
    rng = random.Random(seed)
    rows = []
    for i in range(n):
        answer = " ".join(rng.choice(WORDS) for _ in range(rng.choice([1, 3, 8, 20, 60])))
        messages = instruction_to_messages(f"Question {i}: how do I {rng.choice(WORDS)}?", answer)
        rows.append({"record_id": f"r{i}", "source": f"bench:{i}", "messages": messages})
    folder = root / "bench-data"
    folder.mkdir(parents=True)
    pd.DataFrame(rows).to_parquet(folder / "train.parquet")
    pd.DataFrame(rows[:4]).to_parquet(folder / "eval.parquet")
    splits = {"train": str(folder / "train.parquet"), "eval": str(folder / "eval.parquet")}
    manifest = {"dataset_id": f"bench-{n}", "path": str(folder), "splits": splits}
    (folder / "manifest.json").write_text(json.dumps(manifest))
    return folder


def plain_trainer_script(config: FinetuneConfig, records: pd.DataFrame, out: Path) -> dict:
    """The baseline: what one would write by hand with transformers + peft, no orchestration."""
    base = resolve_base(config.base_model)
    tokenizer = load_tokenizer(base)
    examples, _ = encode_examples(tokenizer, records["messages"], config.max_seq_len)
    started = time.perf_counter()
    torch.manual_seed(config.seed)
    model = AutoModelForCausalLM.from_pretrained(base.path, dtype=torch.float32)
    model.config.use_cache = False
    model = get_peft_model(
        model,
        LoraConfig(
            r=config.lora_rank,
            lora_alpha=config.lora_alpha,
            lora_dropout=config.lora_dropout,
            target_modules=config.target_modules,
            task_type="CAUSAL_LM",
        ),
    )
    args = TrainingArguments(
        output_dir=str(out),
        max_steps=config.max_steps,
        per_device_train_batch_size=config.batch_size,
        learning_rate=config.learning_rate,
        warmup_steps=config.warmup_ratio,
        lr_scheduler_type="cosine",
        logging_steps=config.log_every,
        save_strategy="no",
        seed=config.seed,
        use_cpu=not torch.cuda.is_available(),
        report_to="none",
        remove_unused_columns=False,
        include_num_input_tokens_seen="non_padding",
    )
    trainer = Trainer(
        model=model,
        args=args,
        train_dataset=examples,
        data_collator=DataCollatorWithFlattening(),
    )
    train_started = time.perf_counter()
    trainer.train()
    train_seconds = time.perf_counter() - train_started
    model.save_pretrained(out / "adapter")
    tokens = trainer.state.num_input_tokens_seen
    return {
        "tokens_per_second": tokens / train_seconds,
        "wall": time.perf_counter() - started,
    }


def our_flow(config: FinetuneConfig) -> dict:
    """Our fine-tuning flow, end to end (Prefect tasks, MLflow logging, checkpoints)."""
    started = time.perf_counter()
    result = finetune(config)
    return {
        "tokens_per_second": result["train_metrics"]["tokens_per_second"],
        "wall": time.perf_counter() - started,
    }


def core_run(config: FinetuneConfig, records: pd.DataFrame, out: Path, packing: bool) -> dict:
    """The training core alone, packed or padded."""
    base = resolve_base(config.base_model)
    tokenizer = load_tokenizer(base)
    examples, _ = encode_examples(tokenizer, records["messages"], config.max_seq_len)
    settings = config.model_copy(update={"packing": packing}).train_settings()
    metrics = train_lora(base, tokenizer, examples, config.lora(), settings, out)
    return {"tokens_per_second": metrics["tokens_per_second"], "wall": metrics["train_seconds"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", default="tiny-random", help="Base model reference.")
    parser.add_argument("--steps", type=int, default=30, help="Optimizer steps per run.")
    parser.add_argument("--batch-size", type=int, default=8, help="Examples per batch.")
    parser.add_argument("--records", type=int, default=256, help="Training records.")
    args = parser.parse_args()

    scratch = Path(tempfile.mkdtemp(prefix="bench-finetune-"))
    dataset = write_variable_length_dataset(scratch, args.records)
    records = pd.read_parquet(dataset / "train.parquet")
    config = FinetuneConfig.from_profile(
        "cpu",
        dataset=str(dataset),
        base_model=args.model,
        max_steps=args.steps,
        batch_size=args.batch_size,
        save_every=max(args.steps // 3, 1),
    )
    resolve_base(args.model)  # convert/build once, outside every measurement
    # Warm-up (first-call costs: kernels, tokenizer, Prefect's ephemeral server) off the clock.
    finetune(config.model_copy(update={"max_steps": 2, "seed": 1}))

    baseline = plain_trainer_script(config, records, scratch / "plain")
    ours = our_flow(config)
    packed = core_run(config, records, scratch / "packed", packing=True)
    padded = core_run(config, records, scratch / "padded", packing=False)

    print(f"\nmodel {args.model}, {args.steps} steps x batch {args.batch_size}, variable lengths")
    print("| run | tokens/s | wall s |\n|---|---|---|")
    for name, m in [
        ("plain Trainer + peft script", baseline),
        ("our finetune flow (Prefect + MLflow + checkpoints)", ours),
        ("core, packed (padding-free)", packed),
        ("core, padded", padded),
    ]:
        print(f"| {name} | {m['tokens_per_second']:.0f} | {m['wall']:.1f} |")
    speed = ours["tokens_per_second"] / baseline["tokens_per_second"]
    print(f"\nflow / plain tokens/s ratio: {speed:.2f}", end="")
    print(f"  (wall ratio incl. loading, Prefect, MLflow: {ours['wall'] / baseline['wall']:.2f})")
    gain = packed["tokens_per_second"] / padded["tokens_per_second"]
    print(f"packed / padded tokens/s ratio: {gain:.2f}", end="")
    print(f"  (padded / packed wall time: {padded['wall'] / packed['wall']:.2f})")


if __name__ == "__main__":
    main()
