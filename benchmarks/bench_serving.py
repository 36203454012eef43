"""Serving throughput: continuous batching vs the static batcher vs a sequential `generate` loop.

    .venv/bin/python benchmarks/bench_serving.py --quick                      # tiny model, smoke
    .venv/bin/python benchmarks/bench_serving.py --base smollm2-135m-instruct  # the figures
    .venv/bin/python benchmarks/bench_serving.py --base smollm2-135m-instruct --soak 600 \\
        --concurrency 16                                                     # 10-minute soak

Registers a fresh LoRA adapter (zero-initialised, so it equals the base) as the champion in a
temporary project home and starts the real app twice under uvicorn on loopback, on one loaded
model: `batching: continuous` and `batching: static`. The same chat requests go through the
OpenAI-shaped HTTP API, streamed (`stream: true`, so time to the first content chunk is
measured), at each concurrency; the baseline, in the same process, answers them one at a time
with `generate_batch`. Request i asks for max_tokens * (1 + i % 4) / 4 tokens, so answers end
at different steps as in real traffic (a fixed length hides what continuous batching is for).

Every measurement is repeated `--repeats` times, interleaved (sequential, then per concurrency
static and continuous, then again), and each ratio is taken within one repeat: the summary gives
the median ratio and its spread (min-max), which stays meaningful on a loaded machine.

`--release`: at concurrency 16 on the continuous server, the champion alone, then a 50% canary
of a second adapter, then a shadow release (every request copied to the challenger).

`--soak S`: only the continuous server, `--concurrency` clients sending streamed requests back
to back for S seconds; the process's RSS (server and clients share it) is sampled every 5 s and
its slope fitted by least squares after a warm-up of S/10; errors are counted.

The last line printed is one JSON object with every figure.
"""

import argparse
import asyncio
import json
import os
import socket
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ["LLMOPS_HOME"] = tempfile.mkdtemp(prefix="llmops-bench-")
os.environ.pop("MLFLOW_TRACKING_URI", None)
os.environ["MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR"] = "false"

from llmops.home import configure_environment  # noqa: E402

configure_environment()

import httpx  # noqa: E402
import psutil  # noqa: E402
import uvicorn  # noqa: E402
from peft import LoraConfig, get_peft_model  # noqa: E402

from llmops.home import home_path  # noqa: E402
from llmops.model.generation import generate_batch  # noqa: E402
from llmops.model.loading import load_model, resolve_base  # noqa: E402
from llmops.model.registry import register_adapter, set_alias  # noqa: E402
from llmops.release import new_release, write_release  # noqa: E402
from llmops.serving.app import ServerSettings, create_app  # noqa: E402
from llmops.serving.champion import ModelSlot  # noqa: E402
from llmops.serving.store import InferenceStore  # noqa: E402

MODEL = "bench-assistant"
TOPICS = ["password", "invoice", "export", "login", "billing", "backup", "upgrade", "refund"]


def register_version(base_ref: str, alias: str) -> str:
    """A zero-initialised adapter on the base, registered and given `alias`; its version."""
    base = resolve_base(base_ref)
    peft_model = get_peft_model(
        load_model(base),
        LoraConfig(r=8, lora_alpha=16, target_modules=["q_proj", "v_proj"], task_type="CAUSAL_LM"),
    )
    adapter = home_path(f"bench-adapter-{alias}")
    peft_model.save_pretrained(adapter)
    version = register_adapter(MODEL, str(adapter), base.ref, base.sha256, None, {"as": alias})
    set_alias(MODEL, alias, version)
    return version


def workload(n: int, max_tokens: int) -> list[tuple[list[dict[str, str]], int]]:
    """`n` (conversation, max_tokens) pairs; lengths cycle through a quarter to all of max."""
    return [
        (
            [{"role": "user", "content": f"How do I change my {TOPICS[i % 8]} settings? ({i})"}],
            max(1, max_tokens * (1 + i % 4) // 4),
        )
        for i in range(n)
    ]


def start_server(slot: ModelSlot, batching: str, args: argparse.Namespace) -> str:
    """The app with `batching` on `slot`, under uvicorn in a thread; its base URL."""
    settings = ServerSettings(
        api_key=None,
        max_body_bytes=65536,
        max_tokens_limit=args.max_tokens,
        default_max_tokens=args.max_tokens,
        max_prompt_tokens=1024,
        max_batch=args.max_batch,
        batch_window_ms=args.window_ms,
        batching=batching,
    )
    app = create_app(settings, slot, InferenceStore(str(home_path(f"inference-{batching}"))))
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, port=port, log_level="warning"))
    threading.Thread(target=server.run, daemon=True).start()
    while not server.started:
        time.sleep(0.05)
    return f"http://127.0.0.1:{port}"


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def sequential(slot: ModelSlot, work: list) -> dict[str, float]:
    """The baseline: one `generate` per request, back to back."""
    latencies, tokens, start = [], 0, time.perf_counter()
    for conv, max_tokens in work:
        t = time.perf_counter()
        [(_, _, n)] = generate_batch(slot.loaded.model, slot.loaded.tokenizer, [conv], max_tokens)
        latencies.append(time.perf_counter() - t)
        tokens += n
    wall = time.perf_counter() - start
    return {
        "rps": len(work) / wall,
        "tokens_per_s": tokens / wall,
        "p50_ms": statistics.median(latencies) * 1000,
        "p95_ms": percentile(latencies, 0.95) * 1000,
    }


async def ask_streamed(client: httpx.AsyncClient, conv: list, max_tokens: int) -> tuple:
    """One streamed chat request: (seconds to first content, seconds to the end, tokens)."""
    body = {
        "model": MODEL,
        "messages": conv,
        "max_tokens": max_tokens,
        "stream": True,
        "stream_options": {"include_usage": True},
    }
    t, first, tokens = time.perf_counter(), None, 0
    async with client.stream("POST", "/v1/chat/completions", json=body) as response:
        response.raise_for_status()
        async for line in response.aiter_lines():
            if not line.startswith("data: {"):
                continue
            event = json.loads(line.removeprefix("data: "))
            if "error" in event:
                raise RuntimeError(event["error"]["message"])
            if event.get("usage"):
                tokens = event["usage"]["completion_tokens"]
            choices = event["choices"]
            if first is None and choices and choices[0]["delta"].get("content"):
                first = time.perf_counter() - t
    total = time.perf_counter() - t
    return (first if first is not None else total), total, tokens


async def load_test(url: str, work: list, concurrency: int) -> dict[str, float]:
    """Send every request streamed with at most `concurrency` in flight."""
    gate, firsts, totals, tokens = asyncio.Semaphore(concurrency), [], [], []
    async with httpx.AsyncClient(base_url=url, timeout=600) as client:

        async def one(conv: list, max_tokens: int) -> None:
            async with gate:
                first, total, n = await ask_streamed(client, conv, max_tokens)
                firsts.append(first)
                totals.append(total)
                tokens.append(n)

        start = time.perf_counter()
        await asyncio.gather(*(one(c, m) for c, m in work))
        wall = time.perf_counter() - start
    return {
        "rps": len(work) / wall,
        "tokens_per_s": sum(tokens) / wall,
        "p50_ms": statistics.median(totals) * 1000,
        "p95_ms": percentile(totals, 0.95) * 1000,
        "ttft_p50_ms": statistics.median(firsts) * 1000,
        "ttft_p95_ms": percentile(firsts, 0.95) * 1000,
    }


def spread(values: list[float]) -> dict[str, float]:
    return {"median": statistics.median(values), "min": min(values), "max": max(values)}


def compare(slot: ModelSlot, args: argparse.Namespace) -> dict:
    """Interleaved repeats of sequential, static and continuous; per-repeat ratios."""
    urls = {mode: start_server(slot, mode, args) for mode in ("static", "continuous")}
    work = workload(max(args.requests, max(args.concurrency_levels)), args.max_tokens)
    generate_batch(slot.loaded.model, slot.loaded.tokenizer, [work[0][0]], 4)  # warm-up
    for url in urls.values():
        asyncio.run(load_test(url, work[:2], 2))
    runs: dict[str, list[dict[str, float]]] = {}
    for repeat in range(args.repeats):
        runs.setdefault("sequential", []).append(sequential(slot, work[: args.requests]))
        for c in args.concurrency_levels:
            for mode, url in urls.items():
                # At least `c` requests, so the highest concurrency is really reached.
                result = asyncio.run(load_test(url, work[: max(args.requests, c)], c))
                runs.setdefault(f"{mode} c={c}", []).append(result)
                print(f"repeat {repeat + 1} {mode:<10} c={c:<3} " + fmt(result), flush=True)
    rows = {}
    for name, results in runs.items():
        row = {k: statistics.median(r[k] for r in results) for k in results[0]}
        seq = runs["sequential"]
        row["rps_vs_sequential"] = spread(
            [r["rps"] / s["rps"] for r, s in zip(results, seq, strict=True)]
        )
        if name.startswith("continuous"):
            static = runs[name.replace("continuous", "static")]
            row["rps_vs_static"] = spread(
                [r["rps"] / s["rps"] for r, s in zip(results, static, strict=True)]
            )
        rows[name] = row
    print_table(rows)
    return rows


def fmt(result: dict[str, float]) -> str:
    return " ".join(f"{k} {v:.1f}" for k, v in result.items())


def print_table(rows: dict) -> None:
    print(
        f"\n{'setup':<18}{'req/s':>8}{'tok/s':>8}{'p50 ms':>9}{'p95 ms':>9}{'TTFT p95':>10}"
        f"{'vs sequential':>20}{'vs static':>20}"
    )
    for name, row in rows.items():
        ratios = [row.get("rps_vs_sequential"), row.get("rps_vs_static")]
        cells = "".join(
            f"{r['median']:>8.2f}x ({r['min']:.2f}-{r['max']:.2f})" if r else f"{'':>20}"
            for r in ratios
        )
        print(
            f"{name:<18}{row['rps']:>8.2f}{row['tokens_per_s']:>8.1f}{row['p50_ms']:>9.0f}"
            f"{row['p95_ms']:>9.0f}{row.get('ttft_p95_ms', float('nan')):>10.0f}{cells}"
        )


def soak(slot: ModelSlot, args: argparse.Namespace) -> dict:
    """`args.concurrency` clients for `args.soak` seconds on the continuous server."""
    url = start_server(slot, "continuous", args)
    work = workload(64, args.max_tokens)
    process, samples = psutil.Process(), []
    served, errors = [0], [0]
    start = time.perf_counter()
    deadline = start + args.soak

    async def client(index: int) -> None:
        async with httpx.AsyncClient(base_url=url, timeout=600) as http:
            i = index
            while time.perf_counter() < deadline:
                conv, max_tokens = work[i % len(work)]
                try:
                    await ask_streamed(http, conv, max_tokens)
                    served[0] += 1
                except Exception:
                    errors[0] += 1
                i += args.concurrency

    async def sample() -> None:
        while time.perf_counter() < deadline:
            samples.append((time.perf_counter() - start, process.memory_info().rss / 2**20))
            await asyncio.sleep(5)

    async def run() -> None:
        await asyncio.gather(sample(), *(client(i) for i in range(args.concurrency)))

    asyncio.run(run())
    wall = time.perf_counter() - start
    settled = [(t, rss) for t, rss in samples if t >= args.soak / 10]
    slope, _ = statistics.linear_regression([t for t, _ in settled], [r for _, r in settled])
    result = {
        "seconds": round(wall, 1),
        "concurrency": args.concurrency,
        "served": served[0],
        "errors": errors[0],
        "rps": served[0] / wall,
        "rss_start_mib": round(settled[0][1], 1),
        "rss_end_mib": round(settled[-1][1], 1),
        "rss_max_mib": round(max(r for _, r in samples), 1),
        "rss_slope_mib_per_min": round(slope * 60, 3),
        "samples": len(settled),
    }
    print(fmt(result))
    return result


def release_costs(slot: ModelSlot, args: argparse.Namespace, champion: str) -> dict:
    """Concurrency 16 on the continuous server: the champion alone, a 50% canary (two adapters
    on one base, each variant its own running batch), a shadow release (same run)."""
    url = start_server(slot, "continuous", args)
    work = workload(args.requests, args.max_tokens)
    challenger = register_version(args.base, "challenger")
    rows = {"champion alone": asyncio.run(load_test(url, work, 16))}
    for mode, share in (("canary", 0.5), ("shadow", 0.0)):
        write_release(new_release(MODEL, challenger, champion, mode, share))
        httpx.post(f"{url}/v1/admin/reload", timeout=600).raise_for_status()
        rows[f"{mode} {share:.0%}" if mode == "canary" else mode] = asyncio.run(
            load_test(url, work, 16)
        )
    for name, row in rows.items():
        row["rps_vs_alone"] = row["rps"] / rows["champion alone"]["rps"]
        print(f"{name:<16}" + fmt(row))
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__.splitlines()[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--base", default="tiny-random", help="base model ref")
    parser.add_argument("--quick", action="store_true", help="smoke: c=1,4, 8 requests, 1 repeat")
    parser.add_argument("--requests", type=int, default=32, help="requests per measurement")
    parser.add_argument("--max-tokens", type=int, default=32, help="largest max_tokens asked")
    parser.add_argument("--max-batch", type=int, default=16, help="server's largest batch")
    parser.add_argument("--window-ms", type=float, default=5.0, help="static batching window")
    parser.add_argument("--repeats", type=int, default=2, help="interleaved repeats")
    parser.add_argument(
        "--concurrency-levels", type=int, nargs="+", default=[1, 4, 16, 64], help="to measure"
    )
    parser.add_argument("--soak", type=float, default=0, help="soak for this many seconds")
    parser.add_argument("--concurrency", type=int, default=16, help="clients during the soak")
    parser.add_argument(
        "--release", action="store_true", help="measure a canary and a shadow release instead"
    )
    args = parser.parse_args()
    if args.quick:
        args.requests, args.repeats, args.concurrency_levels = 8, 1, [1, 4]
        args.max_tokens = min(args.max_tokens, 8)
        args.soak = min(args.soak, 20)

    champion = register_version(args.base, "champion")
    slot = ModelSlot(MODEL, "champion", refresh_seconds=3600)
    print(
        f"model {args.base}, {args.requests} requests, max_tokens up to {args.max_tokens}, "
        f"max_batch {args.max_batch}, static window {args.window_ms} ms, {os.cpu_count()} CPUs, "
        f"load average {os.getloadavg()[0]:.1f}",
        flush=True,
    )
    summary = {"bench": "serving", "base": args.base, "quick": args.quick}
    if args.soak:
        summary["soak"] = soak(slot, args)
    elif args.release:
        summary["release"] = release_costs(slot, args, champion)
    else:
        summary["rows"] = compare(slot, args)
    summary["load_average_end"] = os.getloadavg()[0]
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
