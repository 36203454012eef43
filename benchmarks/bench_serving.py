"""Serving throughput: the batched server vs a sequential `generate` loop on the same model.

    .venv/bin/python benchmarks/bench_serving.py                 # tiny random model
    .venv/bin/python benchmarks/bench_serving.py --base smollm2-135m-instruct --requests 32

Registers a fresh LoRA adapter (zero-initialised, so it equals the base) as the champion in a
temporary project home, starts the real app under uvicorn on loopback, and sends the same chat
requests with the OpenAI-shaped HTTP API at concurrency 1, 4 and 16. The baseline, in the same
run and process, answers them one at a time with `generate_batch` on the served model.
Then the same requests streamed (`stream: true`) at concurrency 1 and 4: time to the first
content chunk against the time to the whole answer, streamed and not (use SmolLM2 for these:
the tiny random model answers only whitespace, so it streams no text).
Last, a release of a second adapter at concurrency 16: a 50% canary (two adapters on one base,
switched per batch) against the champion alone, and a shadow release (every request copied to
the challenger off the hot path): its added p95 on the champion's path.
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

from llmops.home import configure_environment  # noqa: E402

configure_environment()

import httpx  # noqa: E402
import uvicorn  # noqa: E402
from peft import LoraConfig, get_peft_model  # noqa: E402
from tqdm import tqdm  # noqa: E402

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


def questions(n: int) -> list[list[dict[str, str]]]:
    return [
        [{"role": "user", "content": f"How do I change my {TOPICS[i % 8]} settings? ({i})"}]
        for i in range(n)
    ]


def stats(latencies: list[float], wall: float) -> dict[str, float]:
    ordered = sorted(latencies)
    return {
        "rps": len(latencies) / wall,
        "p50_ms": statistics.median(ordered) * 1000,
        "p95_ms": ordered[min(len(ordered) - 1, int(0.95 * len(ordered)))] * 1000,
    }


def sequential(slot: ModelSlot, convs: list, max_tokens: int) -> dict[str, float]:
    """The baseline: one `generate` per request, back to back."""
    latencies, start = [], time.perf_counter()
    for conv in tqdm(convs, desc="sequential generate", leave=False):
        t = time.perf_counter()
        generate_batch(slot.loaded.model, slot.loaded.tokenizer, [conv], max_tokens)
        latencies.append(time.perf_counter() - t)
    return stats(latencies, time.perf_counter() - start)


async def load_test(url: str, convs: list, max_tokens: int, concurrency: int) -> dict[str, float]:
    """Send every conversation with at most `concurrency` in flight."""
    gate, latencies = asyncio.Semaphore(concurrency), []
    async with httpx.AsyncClient(base_url=url, timeout=600) as client:

        async def one(conv: list) -> None:
            async with gate:
                t = time.perf_counter()
                body = {"model": MODEL, "messages": conv, "max_tokens": max_tokens}
                response = await client.post("/v1/chat/completions", json=body)
                response.raise_for_status()
                latencies.append(time.perf_counter() - t)

        start = time.perf_counter()
        await asyncio.gather(*(one(c) for c in convs))
    return stats(latencies, time.perf_counter() - start)


def has_content(sse_line: str) -> bool:
    """Whether a server-sent event line is a chunk carrying answer text."""
    if not sse_line.startswith("data: {"):
        return False
    choices = json.loads(sse_line.removeprefix("data: "))["choices"]
    return bool(choices and choices[0]["delta"].get("content"))


async def stream_test(url: str, convs: list, max_tokens: int, concurrency: int) -> dict[str, float]:
    """Stream every conversation; p50 of time to the first content chunk and to [DONE]."""
    gate, firsts, totals = asyncio.Semaphore(concurrency), [], []
    async with httpx.AsyncClient(base_url=url, timeout=600) as client:

        async def one(conv: list) -> None:
            body = {"model": MODEL, "messages": conv, "max_tokens": max_tokens, "stream": True}
            async with gate:
                t, first = time.perf_counter(), None
                async with client.stream("POST", "/v1/chat/completions", json=body) as response:
                    response.raise_for_status()
                    async for line in response.aiter_lines():
                        if first is None and has_content(line):
                            first = time.perf_counter() - t
                totals.append(time.perf_counter() - t)
                firsts.append(first if first is not None else totals[-1])

        await asyncio.gather(*(one(c) for c in convs))
    return {
        "first_ms": statistics.median(firsts) * 1000,
        "total_ms": statistics.median(totals) * 1000,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--base", default="tiny-random", help="base model ref")
    parser.add_argument("--requests", type=int, default=64, help="requests per measurement")
    parser.add_argument("--max-tokens", type=int, default=16, help="max_tokens per request")
    parser.add_argument("--max-batch", type=int, default=16, help="server's largest batch")
    parser.add_argument("--window-ms", type=float, default=5.0, help="server's batching window")
    args = parser.parse_args()

    champion = register_version(args.base, "champion")
    slot = ModelSlot(MODEL, "champion", refresh_seconds=3600)
    settings = ServerSettings(
        api_key=None,
        max_body_bytes=65536,
        max_tokens_limit=args.max_tokens,
        default_max_tokens=args.max_tokens,
        max_prompt_tokens=1024,
        max_batch=args.max_batch,
        batch_window_ms=args.window_ms,
    )
    app = create_app(settings, slot, InferenceStore(str(home_path("inference"))))
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, port=port, log_level="warning"))
    threading.Thread(target=server.run, daemon=True).start()
    while not server.started:
        time.sleep(0.05)
    url = f"http://127.0.0.1:{port}"

    convs = questions(args.requests)
    generate_batch(slot.loaded.model, slot.loaded.tokenizer, convs[:2], args.max_tokens)  # warm-up
    baseline = sequential(slot, convs, args.max_tokens)
    print(
        f"model {args.base}, {args.requests} requests, max_tokens {args.max_tokens}, "
        f"max_batch {args.max_batch}, window {args.window_ms} ms, {os.cpu_count()} CPUs"
    )
    print(f"{'setup':<26}{'req/s':>9}{'p50 ms':>10}{'p95 ms':>10}{'req/s ratio':>13}")
    print(
        f"{'sequential generate':<26}{baseline['rps']:>9.2f}{baseline['p50_ms']:>10.0f}"
        f"{baseline['p95_ms']:>10.0f}{1.0:>12.2f}x"
    )
    for concurrency in (1, 4, 16):
        result = asyncio.run(load_test(url, convs, args.max_tokens, concurrency))
        print(
            f"{f'server, concurrency {concurrency}':<26}{result['rps']:>9.2f}"
            f"{result['p50_ms']:>10.0f}{result['p95_ms']:>10.0f}"
            f"{result['rps'] / baseline['rps']:>12.2f}x"
        )
    print(f"\n{'streamed':<26}{'TTFT p50':>10}{'done p50':>10}{'TTFT / non-streamed p50':>25}")
    for concurrency in (1, 4):
        plain = asyncio.run(load_test(url, convs, args.max_tokens, concurrency))
        streamed = asyncio.run(stream_test(url, convs, args.max_tokens, concurrency))
        print(
            f"{f'concurrency {concurrency}':<26}{streamed['first_ms']:>10.0f}"
            f"{streamed['total_ms']:>10.0f}{streamed['first_ms'] / plain['p50_ms']:>24.2f}x"
        )
    release_costs(url, convs, args, champion)
    server.should_exit = True


def release_costs(url: str, convs: list, args: argparse.Namespace, champion: str) -> None:
    """Concurrency 16: the champion alone, a 50% canary, a shadow release (same run)."""
    challenger = register_version(args.base, "challenger")
    print(f"\n{'release, concurrency 16':<26}{'req/s':>9}{'p50 ms':>10}{'p95 ms':>10}{'ratio':>9}")
    alone = asyncio.run(load_test(url, convs, args.max_tokens, 16))
    rows = [("champion alone", alone)]
    for mode, share in (("canary", 0.5), ("shadow", 0.0)):
        write_release(new_release(MODEL, challenger, champion, mode, share))
        httpx.post(f"{url}/v1/admin/reload", timeout=600).raise_for_status()
        rows.append(
            (
                f"{mode} {share:.0%}" if mode == "canary" else mode,
                asyncio.run(load_test(url, convs, args.max_tokens, 16)),
            )
        )
    for name, result in rows:
        print(
            f"{name:<26}{result['rps']:>9.2f}{result['p50_ms']:>10.0f}{result['p95_ms']:>10.0f}"
            f"{result['rps'] / alone['rps']:>8.2f}x"
        )
    shadow = rows[-1][1]
    print(f"shadow: champion-path p95 +{shadow['p95_ms'] - alone['p95_ms']:.0f} ms")


if __name__ == "__main__":
    main()
