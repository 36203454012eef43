"""Fine-tuning throughput: a plain padded transformers Trainer + peft script (the baseline) vs
our training core with each speed setting, and our whole finetune flow, on the same model,
data and settings, interleaved in one run (A B C A B C ...), reported as ratios to the
baseline with achieved FLOP/s and MFU against this machine's measured fp32 matmul peak.

    .venv/bin/python benchmarks/bench_finetune.py --quick                  # tiny model, ~1 min
    .venv/bin/python benchmarks/bench_finetune.py                          # tiny model
    .venv/bin/python benchmarks/bench_finetune.py --model smollm2-135m-instruct --steps 8
    .venv/bin/python benchmarks/bench_finetune.py --data-path --data-records 200000

The data is variable-length on purpose (answers from 1 to ~60 words), which is where padding
wastes compute. Tokens/s counts real (non-padding) tokens only, in steady state: the first
`--warmup-steps` steps of every run (torch.compile's compilation, first-call costs) are timed
apart and reported as `warmup_s`. Each measurement gets a fresh run folder. `--data-path`
measures the training data path alone (records -> first training step: peak RSS and seconds)
for the in-memory list and the `datasets` (Arrow) path, each in a fresh process. The last line
printed is one JSON summary.
"""

import argparse
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
# --data-path's child processes share their parent's home (and its built models).
os.environ["LLMOPS_HOME"] = os.environ.get("BENCH_FINETUNE_HOME") or tempfile.mkdtemp(
    prefix="llmops-bench-"
)
os.environ.pop("MLFLOW_TRACKING_URI", None)

from llmops.home import configure_environment  # noqa: E402

configure_environment()

import json  # noqa: E402

import pandas as pd  # noqa: E402
import torch  # noqa: E402
from peft import LoraConfig, get_peft_model  # noqa: E402
from torch.utils.flop_counter import FlopCounterMode  # noqa: E402
from transformers import (  # noqa: E402
    AutoModelForCausalLM,
    DataCollatorForSeq2Seq,
    Trainer,
    TrainerCallback,
    TrainingArguments,
)

from flows.finetune import FinetuneConfig, finetune  # noqa: E402
from llmops.model.loading import load_tokenizer, resolve_base  # noqa: E402
from llmops.model.training import (  # noqa: E402
    LabelLogitsOnly,
    Precision,
    build_lora_model,
    encode_dataset,
    encode_examples,
    load_records_dataset,
    make_collator,
    train_lora,
)
from llmops.records import instruction_to_messages  # noqa: E402

WORDS = ["open", "settings", "choose", "billing", "press", "save", "export", "invoice", "backup"]

# name -> the FinetuneConfig speed settings changed; "plain" and "flow" runs are apart.
VARIANTS: dict[str, dict] = {
    "core padded": {"packing": False},
    "core packed": {},
    "core packed + label logits": {"label_logits_only": True},
    "core packed + label logits + 1 thread": {"label_logits_only": True, "num_threads": 1},
    "core packed + label logits + bf16": {"label_logits_only": True, "cpu_bf16": True},
    "core packed + label logits + bf16 + compile": {
        "label_logits_only": True,
        "cpu_bf16": True,
        "torch_compile": True,
    },
}
SPEED_SETTINGS = ["label_logits_only", "cpu_bf16", "torch_compile"]
# Compiling takes over a minute here for a same-speed steady state: asked for by name only.
DEFAULT_VARIANTS = [name for name in VARIANTS if not name.endswith("compile")]


def write_variable_length_dataset(root: Path, n: int, seed: int = 0) -> Path:
    """A prepared-dataset folder whose answers vary from 1 to ~60 words."""
    rng = random.Random(seed)
    rows = []
    for i in range(n):
        answer = " ".join(rng.choice(WORDS) for _ in range(rng.choice([1, 3, 8, 20, 60])))
        messages = instruction_to_messages(f"Question {i}: how do I {rng.choice(WORDS)}?", answer)
        rows.append({"record_id": f"r{i}", "source": f"bench:{i}", "messages": messages})
    folder = root / f"bench-data-{n}"
    folder.mkdir(parents=True)
    pd.DataFrame(rows).to_parquet(folder / "train.parquet")
    pd.DataFrame(rows[:4]).to_parquet(folder / "eval.parquet")
    splits = {"train": str(folder / "train.parquet"), "eval": str(folder / "eval.parquet")}
    manifest = {"dataset_id": f"bench-{n}", "path": str(folder), "splits": splits}
    (folder / "manifest.json").write_text(json.dumps(manifest))
    return folder


class StepClock(TrainerCallback):
    """Time and non-padding tokens seen at the start of training and at every step end."""

    def __init__(self) -> None:
        self.marks: list[tuple[float, int]] = []

    def on_train_begin(self, args, state, control, **_):  # noqa: ANN001, ANN201
        self.marks = [(time.perf_counter(), state.num_input_tokens_seen)]

    def on_step_end(self, args, state, control, **_):  # noqa: ANN001, ANN201
        self.marks.append((time.perf_counter(), state.num_input_tokens_seen))

    def result(self, warmup_steps: int) -> dict:
        """Steady-state tokens/s after `warmup_steps` steps, and the warm-up's seconds."""
        (t0, _), (tw, kw), (te, ke) = self.marks[0], self.marks[warmup_steps], self.marks[-1]
        return {"tokens_per_second": (ke - kw) / (te - tw), "warmup_s": tw - t0}


def plain_padded_script(
    config: FinetuneConfig, examples: list[dict], out: Path, clock: StepClock
) -> None:
    """The baseline: what one would write by hand with transformers + peft, padded batches."""
    base = resolve_base(config.base_model)
    tokenizer = load_tokenizer(base)
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
    tokenizer.padding_side = "right"
    collator = DataCollatorForSeq2Seq(tokenizer, label_pad_token_id=-100, padding=True)
    trainer = Trainer(
        model=model,
        args=args,
        train_dataset=examples,
        data_collator=collator,
        processing_class=tokenizer,
        callbacks=[clock],
    )
    trainer.train()


def core_run(
    config: FinetuneConfig,
    examples: list[dict],
    out: Path,
    clock: StepClock,
    overrides: dict,
) -> None:
    """Our training core (train_lora) with some speed settings changed."""
    base = resolve_base(config.base_model)
    tokenizer = load_tokenizer(base)
    settings = config.model_copy(update=overrides).train_settings()
    train_lora(
        base,
        tokenizer,
        examples,
        config.lora(),
        settings,
        out / "checkpoints",
        out / "adapter",
        callbacks=[clock],
    )


def flops_per_token(config: FinetuneConfig, examples: list[dict], label_logits: bool) -> float:
    """Executed FLOPs per non-padding token of one packed forward + backward (torch's counter:
    matmuls and attention; elementwise ops are not counted)."""
    base = resolve_base(config.base_model)
    tokenizer = load_tokenizer(base)
    model = build_lora_model(base, config.lora(), Precision(torch.device("cpu"), False, False))
    collate = make_collator(tokenizer, packing=True)
    if label_logits:
        collate = LabelLogitsOnly(collate)
    batch = collate(examples[: config.batch_size])
    with FlopCounterMode(display=False) as counter:
        model(**batch).loss.backward()
    return counter.get_total_flops() / batch["input_ids"].numel()


def profile_steps(
    config: FinetuneConfig, examples: list[dict], label_logits: bool, steps: int = 3
) -> dict[str, float]:
    """Where one training step's time goes: seconds per step by category, from torch.profiler
    (aten ops' self time, lm_head told apart by its vocabulary-sized shapes) and wall clocks
    around collation and the optimizer."""
    from torch.profiler import ProfilerActivity, profile

    base = resolve_base(config.base_model)
    tokenizer = load_tokenizer(base)
    model = build_lora_model(base, config.lora(), Precision(torch.device("cpu"), False, False))
    vocab = model.config.vocab_size
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-4)
    collate = make_collator(tokenizer, packing=True)
    if label_logits:
        collate = LabelLogitsOnly(collate)
    walls = {"data collation": 0.0, "optimizer (AdamW)": 0.0, "step": 0.0}

    def step(i: int) -> None:
        started = time.perf_counter()
        chunk = examples[i * config.batch_size : (i + 1) * config.batch_size]
        batch = collate(chunk)
        collated = time.perf_counter()
        model(**batch).loss.backward()
        stepped = time.perf_counter()
        optimizer.step()
        optimizer.zero_grad()
        ended = time.perf_counter()
        walls["data collation"] += collated - started
        walls["optimizer (AdamW)"] += ended - stepped
        walls["step"] += ended - started

    step(steps)  # warm-up, off the record
    walls = dict.fromkeys(walls, 0.0)
    with profile(activities=[ProfilerActivity.CPU], record_shapes=True) as prof:
        for i in range(steps):
            with torch.profiler.record_function("forward_backward"):
                step(i)
    parts = dict.fromkeys(
        [
            "lm_head matmuls (fwd + bwd)",
            "other matmuls (q/k/v/o, MLP, LoRA)",
            "attention (sdpa)",
            "cross-entropy over the vocabulary",
            "other ops (norms, elementwise, copies)",
        ],
        0.0,
    )
    for event in prof.key_averages(group_by_input_shape=True):
        if not event.key.startswith("aten::"):
            continue
        seconds = event.self_cpu_time_total / 1e6
        shapes = [d for shape in event.input_shapes for d in (shape or [])]
        if event.key in ("aten::mm", "aten::addmm", "aten::bmm", "aten::matmul"):
            key = "lm_head" if vocab in shapes else "other matmuls"
        elif "scaled_dot_product" in event.key or "flash_attention" in event.key:
            key = "attention"
        elif "log_softmax" in event.key or "nll_loss" in event.key:
            key = "cross-entropy"
        else:
            key = "other ops"
        parts[next(name for name in parts if name.startswith(key))] += seconds
    # optimizer ops ran inside the profile too: take them out of "other ops"
    parts["other ops (norms, elementwise, copies)"] -= walls["optimizer (AdamW)"]
    parts["data collation"] = walls["data collation"]
    parts["optimizer (AdamW)"] = walls["optimizer (AdamW)"]
    parts["Python and framework overhead (the rest)"] = walls["step"] - sum(parts.values())
    return {name: seconds / steps for name, seconds in parts.items()}


def print_profile(config: FinetuneConfig, examples: list[dict]) -> dict:
    """The profile table, all logits vs label logits only."""
    before = profile_steps(config, examples, label_logits=False)
    after = profile_steps(config, examples, label_logits=True)
    total_before, total_after = sum(before.values()), sum(after.values())
    print(f"\nwhere a packed step's time goes ({config.base_model}, batch {config.batch_size})")
    print("| part | all logits: s/step | share | label logits only: s/step | share |")
    print("|---|---|---|---|---|")
    for name in before:
        print(
            f"| {name} | {before[name]:.3f} | {before[name] / total_before:.0%} | "
            f"{after[name]:.3f} | {after[name] / total_after:.0%} |"
        )
    print(f"| total | {total_before:.3f} | | {total_after:.3f} | |")
    return {"all_logits": before, "label_logits": after}


def matmul_peak(size: int = 2048, repeats: int = 5) -> float:
    """This machine's fp32 matmul FLOP/s right now: the best of a few large torch.matmul."""
    a, b = torch.randn(size, size), torch.randn(size, size)
    a @ b
    best = float("inf")
    for _ in range(repeats):
        started = time.perf_counter()
        a @ b
        best = min(best, time.perf_counter() - started)
    return 2 * size**3 / best


def data_path_child(mode: str, dataset: Path, model: str, max_seq_len: int) -> None:
    """One data-path measurement in this fresh process: records -> first training step."""
    import resource

    tokenizer = load_tokenizer(resolve_base(model))
    started = time.perf_counter()
    if mode == "list":
        records = pd.read_parquet(dataset / "train.parquet")
        examples, _ = encode_examples(tokenizer, records["messages"], max_seq_len)
    else:
        raw = load_records_dataset(
            str(dataset / "train.parquet"), dataset / "hf-cache", streaming=mode == "streaming"
        )
        examples = encode_dataset(tokenizer, raw, max_seq_len)
    collate = make_collator(tokenizer, packing=True)
    first = next(iter(examples))
    collate([first])
    seconds = time.perf_counter() - started
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB -> MiB
    print(json.dumps({"mode": mode, "seconds": seconds, "peak_rss_mib": peak}))


def measure_data_path(args: argparse.Namespace, scratch: Path) -> dict:
    """The data path's start-up and peak memory: the list, then `datasets` cold, warm
    (fingerprint cache hit), and streamed; each in a fresh process."""
    dataset = write_variable_length_dataset(scratch, args.data_records)
    results = {}
    for mode, label in [
        ("list", "list (before)"),
        ("datasets", "datasets, cold"),
        ("datasets", "datasets, cached"),
        ("streaming", "datasets, streaming"),
    ]:
        command = [sys.executable, __file__, "--data-path-child", mode, "--model", args.model]
        command += ["--data-dir", str(dataset)]
        env = {**os.environ, "BENCH_FINETUNE_HOME": os.environ["LLMOPS_HOME"]}
        out = subprocess.run(command, check=True, capture_output=True, text=True, env=env).stdout
        results[label] = json.loads(out.strip().splitlines()[-1])
    print(f"\ndata path, {args.data_records} records, records -> first training step")
    print("| path | seconds | peak RSS MiB |\n|---|---|---|")
    for label, m in results.items():
        print(f"| {label} | {m['seconds']:.1f} | {m['peak_rss_mib']:.0f} |")
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", default="tiny-random", help="Base model reference.")
    parser.add_argument("--steps", type=int, default=20, help="Optimizer steps per run.")
    parser.add_argument("--warmup-steps", type=int, default=2, help="Steps timed apart.")
    parser.add_argument("--batch-size", type=int, default=8, help="Examples per batch.")
    parser.add_argument("--records", type=int, default=256, help="Training records.")
    parser.add_argument("--repeats", type=int, default=2, help="Interleaved rounds.")
    parser.add_argument(
        "--variants", default="", help="Comma-separated subset of core variants (default all)."
    )
    parser.add_argument("--no-flow", action="store_true", help="Leave out the Prefect flow.")
    parser.add_argument(
        "--threads",
        type=int,
        default=None,
        help="torch threads for every run (default torch's); on a shared machine 1 avoids "
        "OpenMP threads spinning against other processes.",
    )
    parser.add_argument("--quick", action="store_true", help="8 steps, 2 rounds, no flow.")
    parser.add_argument("--data-path", action="store_true", help="Measure the data path only.")
    parser.add_argument(
        "--profile", action="store_true", help="Profile a packed step only (torch.profiler)."
    )
    parser.add_argument("--data-records", type=int, default=200_000, help="For --data-path.")
    parser.add_argument("--data-path-child", help=argparse.SUPPRESS)
    parser.add_argument("--data-dir", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.data_path_child:
        data_path_child(args.data_path_child, Path(args.data_dir), args.model, 384)
        return
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    scratch = Path(tempfile.mkdtemp(prefix="bench-finetune-"))
    resolve_base(args.model)  # convert/build once, outside every measurement
    if args.data_path:
        summary = {"bench": "finetune-data-path", "records": args.data_records}
        print(json.dumps({**summary, "results": measure_data_path(args, scratch)}))
        return
    if args.quick:
        args.steps, args.repeats, args.no_flow = 8, 2, True

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
    examples, _ = encode_examples(
        load_tokenizer(resolve_base(args.model)), records["messages"], config.max_seq_len
    )
    if args.profile:
        summary = {"bench": "finetune-profile", "model": args.model}
        print(json.dumps({**summary, "parts": print_profile(config, examples)}))
        return
    # The core variants start from every speed setting off; the flow runs the profile's.
    speed_off = config.model_copy(update=dict.fromkeys(SPEED_SETTINGS, False))
    chosen = [v.strip() for v in args.variants.split(",") if v.strip()] or DEFAULT_VARIANTS
    names = ["plain padded Trainer + peft script", *chosen]
    if not args.no_flow:
        names.append("our finetune flow (profile settings)")
        # Warm-up (Prefect's ephemeral server, first-call costs) off the clock.
        finetune(config.model_copy(update={"max_steps": 2, "seed": 1}))

    runs: dict[str, list[dict]] = {name: [] for name in names}
    peaks = [matmul_peak()]
    for round_ in range(args.repeats):
        for name in names:
            out = scratch / f"{len(os.listdir(scratch))}"
            clock = StepClock()
            if name.startswith("plain"):
                plain_padded_script(config, examples, out, clock)
            elif name.startswith("our"):
                clock = None
                started = time.perf_counter()
                result = finetune(config.model_copy(update={"store": str(out)}))
                metrics = result.metrics
                runs[name].append(
                    {
                        "tokens_per_second": metrics["tokens_per_second"],
                        "warmup_s": 0.0,
                        "wall": time.perf_counter() - started,
                    }
                )
                continue
            else:
                core_run(speed_off, examples, out, clock, VARIANTS[name])
            runs[name].append(clock.result(args.warmup_steps))
            print(f"round {round_}: {name}: {runs[name][-1]['tokens_per_second']:.0f} tokens/s")
    peaks.append(matmul_peak())

    peak = max(peaks)
    executed = {
        False: flops_per_token(config, examples, label_logits=False),
        True: flops_per_token(config, examples, label_logits=True),
    }
    baseline = runs[names[0]]
    print(
        f"\nmodel {args.model}, {args.steps} steps x batch {args.batch_size}, variable lengths, "
        f"{args.repeats} interleaved rounds, {torch.get_num_threads()} torch threads; "
        f"fp32 matmul peak {peak / 1e9:.1f} GFLOP/s"
    )
    print("| run | tokens/s (median) | ratio to plain padded (median, min-max) | warm-up s |")
    print("|---|---|---|---|")
    table = {}
    for name in names:
        ratios = [
            r["tokens_per_second"] / b["tokens_per_second"]
            for r, b in zip(runs[name], baseline, strict=True)
        ]
        tps = statistics.median(r["tokens_per_second"] for r in runs[name])
        warm = statistics.median(r["warmup_s"] for r in runs[name])
        table[name] = {
            "tokens_per_second": tps,
            "ratio": statistics.median(ratios),
            "ratio_min": min(ratios),
            "ratio_max": max(ratios),
            "warmup_s": warm,
        }
        print(
            f"| {name} | {tps:.0f} | {statistics.median(ratios):.2f} "
            f"({min(ratios):.2f}-{max(ratios):.2f}) | {warm:.1f} |"
        )
    best = max(chosen, key=lambda n: table[n]["ratio"])
    label = VARIANTS[best].get("label_logits_only", False)
    flops = table[best]["tokens_per_second"] * executed[label]
    print(
        f"\nbest core variant: {best}; executed {executed[label] / 1e6:.1f} MFLOP/token "
        f"(all logits: {executed[False] / 1e6:.1f}): {flops / 1e9:.2f} GFLOP/s, "
        f"MFU {flops / peak:.1%} of the measured fp32 matmul peak"
    )
    summary = {
        "bench": "finetune",
        "model": args.model,
        "steps": args.steps,
        "batch_size": args.batch_size,
        "repeats": args.repeats,
        "threads": torch.get_num_threads(),
        "matmul_peak_gflops": peak / 1e9,
        "flops_per_token": {"all_logits": executed[False], "label_logits": executed[True]},
        "best": best,
        "best_gflops": flops / 1e9,
        "best_mfu": flops / peak,
        "runs": table,
    }
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
