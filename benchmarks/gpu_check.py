"""The steps of benchmarks/gpu_check.sh (run that; this is its Python half).

    .venv/bin/python benchmarks/gpu_check.py train --base smollm2-135m-instruct --out DIR [--qlora]
    CUDA_VISIBLE_DEVICES= .venv/bin/python benchmarks/gpu_check.py answer --base ... --adapter DIR
    .venv/bin/python benchmarks/gpu_check.py serving BENCH_SERVING_OUTPUT.txt
    .venv/bin/python benchmarks/gpu_check.py summary RESULTS.jsonl

`train` fine-tunes a LoRA adapter with our training core (llmops.model.training.train_lora: bf16
on CUDA, 4-bit NF4 base with --qlora) on variable-length support conversations and prints one
JSON line: steady-state tokens/s (non-padding tokens; the first log window, with CUDA start-up
and kernel selection, is left out), achieved FLOP/s and MFU against the device's dense bf16 peak
(PEAK_FLOPS; on CPU, a measured fp32 matmul peak).

FLOPs per token: full fine-tuning costs ~6N per token (forward 2N, backward 4N: gradients of
the activations and of the weights). LoRA freezes the base, so the backward pass skips the
weight gradients of N: ~4N, plus the adapters' own share (2.4M of 135M parameters, under 2%,
left out). Both are reported: `mfu` counts 4N (the work LoRA does), `mfu_6n` the conventional
6N. The attention-score FLOPs (~12 * layers * d_model * context per token) are left out too:
about 5% of 4N for SmolLM2-135M at a 256-token context.

`answer` loads the base on the CPU with the adapter and answers a question; `serving` picks the
concurrency-16 rows from bench_serving's last (JSON) line; `summary` prints the table of every
step's JSON line and, last, one JSON summary line.
"""

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import torch  # noqa: E402

# Dense bf16 tensor-core peak FLOP/s (no sparsity), by a substring of the CUDA device name;
# the first match wins, so the more specific names come first.
PEAK_FLOPS = {
    "H100 PCIe": 756e12,
    "H100 NVL": 835e12,
    "H100": 989e12,  # SXM (HBM3)
    "H200": 989e12,
    "GH200": 989e12,
    "A100": 312e12,
    "L40S": 362e12,
    "L4": 121e12,
    "A10G": 70e12,
    "RTX 4090": 165e12,
}

TOPICS = ["password", "invoice", "export", "login", "billing", "backup", "upgrade", "refund"]
QUESTION = "How do I change my password settings?"


def conversations(n: int) -> list[list[dict[str, str]]]:
    """Support dialogs whose answers run from a few words to ~120, where padding would cost."""
    from llmops.records import instruction_to_messages

    rows = []
    for i in range(n):
        topic = TOPICS[i % len(TOPICS)]
        steps = " ".join(f"Then check step {k} of the {topic} page." for k in range(i % 17))
        answer = f"Open Settings, choose {topic.title()}, then press Save. {steps}"
        rows.append(instruction_to_messages(f"How do I change my {topic} settings? ({i})", answer))
    return rows


def peak_flops(device: torch.device) -> tuple[float, str]:
    """The device's peak FLOP/s and where the figure comes from."""
    if device.type == "cuda":
        name = torch.cuda.get_device_name(device)
        for key, flops in PEAK_FLOPS.items():
            if key in name:
                return flops, f"dense bf16 peak of {key} (datasheet)"
        raise SystemExit(f"no peak FLOP/s known for {name!r}: add it to PEAK_FLOPS")
    # CPU (the smoke run): the best of a few fp32 matmuls, the achievable peak of this host.
    a, b = torch.randn(1024, 1024), torch.randn(1024, 1024)
    best = 0.0
    for _ in range(5):
        started = time.perf_counter()
        a @ b
        best = max(best, 2 * 1024**3 / (time.perf_counter() - started))
    return best, "measured fp32 matmul (1024^3) on this CPU"


def train(args: argparse.Namespace) -> dict[str, Any]:
    """Fine-tune an adapter with train_lora; its throughput, MFU and a GPU-side answer."""
    from llmops.model.loading import load_tokenizer, resolve_base
    from llmops.model.training import (
        LoraSettings,
        ThroughputCallback,
        TrainSettings,
        encode_examples,
        pick_precision,
        train_lora,
    )

    base = resolve_base(args.base)
    tokenizer = load_tokenizer(base)
    examples, _ = encode_examples(tokenizer, conversations(args.records), args.max_seq_len)
    precision = pick_precision()
    settings = TrainSettings(
        learning_rate=2e-4,
        max_steps=args.steps,
        batch_size=args.batch_size,
        grad_accum=1,
        warmup_ratio=0.0,
        packing=True,
        save_every=args.steps,
        log_every=args.log_every,
        seed=0,
        qlora=args.qlora,
    )
    windows: list[float] = []
    callback = ThroughputCallback(
        lambda values, _: (
            windows.append(values["tokens_per_second"]) if "tokens_per_second" in values else None
        )
    )
    out = Path(args.out)
    metrics = train_lora(
        base,
        tokenizer,
        examples,
        LoraSettings(rank=16, alpha=32, dropout=0.0, target_modules="all-linear"),
        settings,
        out / "checkpoints",
        out / "adapter",
        callbacks=[callback],
        precision=precision,
    )
    steady = statistics.median(windows[1:] or windows)
    from transformers import AutoConfig

    params = _parameters(AutoConfig.from_pretrained(base.path))
    peak, source = peak_flops(precision.device)
    quantized = args.qlora and precision.device.type == "cuda"
    return {
        "step": "train-qlora" if args.qlora else "train-lora",
        "device": _device_name(precision.device),
        "dtype": "nf4 base + bf16 compute" if quantized else str(precision.dtype),
        "qlora_applied": quantized,
        "base": args.base,
        "steps": metrics["global_step"],
        "tokens_per_second": steady,
        "tokens_per_second_windows": windows,
        "params": params,
        "achieved_flops": 4 * params * steady,
        "peak_flops": peak,
        "peak_source": source,
        "mfu": 4 * params * steady / peak,
        "mfu_6n": 6 * params * steady / peak,
        "train_loss": metrics["train_loss"],
        "adapter": str(out / "adapter"),
        "peak_memory_gib": torch.cuda.max_memory_allocated() / 2**30
        if precision.device.type == "cuda"
        else None,
    }


def answer(args: argparse.Namespace) -> dict[str, Any]:
    """Load the base with the adapter on this process's device (the CPU under
    CUDA_VISIBLE_DEVICES=) and answer one question."""
    from peft import PeftModel

    from llmops.model.generation import generate_batch
    from llmops.model.loading import load_model, load_tokenizer, pick_device, resolve_base

    device = pick_device()
    base = resolve_base(args.base)
    model = PeftModel.from_pretrained(load_model(base, device), args.adapter).eval()
    question = [{"role": "user", "content": QUESTION}]
    text, prompt_tokens, completion_tokens = generate_batch(
        model, load_tokenizer(base), [question], args.max_new_tokens
    )[0]
    return {
        "step": "answer-on-cpu",
        "device": _device_name(device),
        "cuda_visible": torch.cuda.is_available(),
        "adapter": args.adapter,
        "question": QUESTION,
        "answer": text,
        "completion_tokens": completion_tokens,
        "ok": device.type == "cpu" and completion_tokens > 0,
    }


def serving(args: argparse.Namespace) -> dict[str, Any]:
    """The concurrency-16 rows of bench_serving's JSON summary (its last line)."""
    last = Path(args.output).read_text().splitlines()[-1]
    rows = json.loads(last)["rows"]
    picked = {name: row for name, row in rows.items() if name.endswith("c=16")}
    if not picked:
        raise SystemExit(f"no c=16 row in bench_serving's summary: {sorted(rows)}")
    return {"step": "serving", "rows": picked}


def summary(args: argparse.Namespace) -> None:
    """The table of every step's result, then one JSON summary line."""
    results = [json.loads(line) for line in Path(args.results).read_text().splitlines() if line]
    by_step = {r["step"]: r for r in results}
    print(f"\n{'step':<14}{'device':<28}{'tokens/s':>10}{'MFU (4N)':>10}{'MFU (6N)':>10}")
    for name in ("train-lora", "train-qlora"):
        if name in by_step:
            r = by_step[name]
            print(
                f"{name:<14}{r['device'][:27]:<28}{r['tokens_per_second']:>10.0f}"
                f"{r['mfu']:>10.1%}{r['mfu_6n']:>10.1%}  ({r['dtype']}; peak: {r['peak_source']})"
            )
        else:
            print(f"{name:<14}skipped: {by_step.get(name + '-skipped', {}).get('why', 'not run')}")
    served = by_step.get("serving")
    for name, row in (served or {}).get("rows", {}).items():
        ratio = row.get("rps_vs_sequential", {}).get("median", float("nan"))
        print(
            f"serving {name:<18}{row['rps']:>8.1f} req/s {row['tokens_per_s']:>9.0f} tokens/s "
            f"p95 {row['p95_ms']:.0f} ms, {ratio:.2f}x the sequential loop"
        )
    if served is None:
        print("serving c=16: not run (see the log)")
    cpu = by_step.get("answer-on-cpu")
    if cpu:
        verdict = "OK" if cpu["ok"] else "FAILED"
        print(f"adapter on CPU {verdict}: {cpu['question']!r} -> {cpu['answer'][:80]!r}")
    else:
        print("adapter on CPU: not run (see the log)")
    keys = ("tokens_per_second", "mfu", "mfu_6n", "device", "dtype")
    compact = {
        "train_lora": {k: by_step["train-lora"][k] for k in keys}
        if "train-lora" in by_step
        else None,
        "train_qlora": {k: by_step["train-qlora"][k] for k in keys}
        if "train-qlora" in by_step
        else None,
        "serving_c16": served["rows"] if served else None,
        "adapter_answers_on_cpu": bool(cpu and cpu["ok"]),
    }
    print(json.dumps({"gpu_check": compact}))


def _parameters(config: Any) -> int:
    """Parameters that take part in every token's matmuls: all of them, the embedding counted
    once as the (tied) output projection; looked up from the config, so the 4-bit model's
    packed weights do not miscount."""
    from transformers import AutoModelForCausalLM

    with torch.device("meta"):
        model = AutoModelForCausalLM.from_config(config)
    return sum(p.numel() for p in model.parameters())


def _device_name(device: torch.device) -> str:
    return torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    steps = parser.add_subparsers(dest="command", required=True)
    trainer = steps.add_parser("train", help="fine-tune an adapter; throughput and MFU")
    trainer.add_argument("--base", default="smollm2-135m-instruct")
    trainer.add_argument("--out", required=True, help="folder for the checkpoints and adapter")
    trainer.add_argument("--qlora", action="store_true", help="4-bit NF4 base (CUDA only)")
    trainer.add_argument("--steps", type=int, default=40)
    trainer.add_argument("--batch-size", type=int, default=32)
    trainer.add_argument("--records", type=int, default=512)
    trainer.add_argument("--max-seq-len", type=int, default=512)
    trainer.add_argument("--log-every", type=int, default=5)
    answerer = steps.add_parser("answer", help="load the adapter on this device and answer")
    answerer.add_argument("--base", default="smollm2-135m-instruct")
    answerer.add_argument("--adapter", required=True)
    answerer.add_argument("--max-new-tokens", type=int, default=32)
    server = steps.add_parser("serving", help="pick the c=16 rows of bench_serving's output")
    server.add_argument("output", help="what benchmarks/bench_serving.py printed")
    summarizer = steps.add_parser("summary", help="table and JSON summary of the results")
    summarizer.add_argument("results", help="the JSON lines the other steps printed")
    args = parser.parse_args()
    if args.command == "summary":
        summary(args)
        return
    os.environ.setdefault("TQDM_DISABLE", "1")
    result = {"train": train, "answer": answer, "serving": serving}[args.command](args)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
