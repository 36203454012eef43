"""The dynamic batcher and hot-swap slot on the real tiny model (loaded directly, no registry)."""

import asyncio
from pathlib import Path

import pytest

from llmops.model.loading import load_model, load_tokenizer, resolve_base
from llmops.serving.batching import DynamicBatcher, GenerationRequest, PromptTooLongError
from llmops.serving.champion import LoadedModel, ModelSlot
from llmops.serving.store import InferenceStore


class Versions:
    """Stands in for the registry alias: which version is current, and what was loaded."""

    def __init__(self) -> None:
        self.current = "1"
        self.loads: list[str] = []
        base = resolve_base("tiny-random")
        self.model, self.tokenizer = load_model(base), load_tokenizer(base)

    def load(self, name: str, alias: str) -> LoadedModel:
        self.loads.append(self.current)
        return LoadedModel(name, self.current, "tiny-random", self.model, self.tokenizer)

    def version(self, name: str, alias: str) -> str | None:
        return self.current


@pytest.fixture(scope="module")
def versions() -> Versions:
    return Versions()


def _slot(versions: Versions, refresh_seconds: float = 0.0) -> ModelSlot:
    return ModelSlot("m", "champion", refresh_seconds, versions.load, versions.version)


def _ask(text: str, max_tokens: int = 6) -> GenerationRequest:
    return GenerationRequest([{"role": "user", "content": text}], max_tokens, 0.0, "chat")


async def _serve(batcher: DynamicBatcher, requests: list[GenerationRequest]) -> list:
    worker = asyncio.create_task(batcher.run())
    try:
        return await asyncio.gather(*(batcher.submit(r) for r in requests), return_exceptions=True)
    finally:
        worker.cancel()


def test_concurrent_requests_share_batches_and_are_logged(
    versions: Versions, tmp_path: Path
) -> None:
    store = InferenceStore(str(tmp_path))
    sizes: list[int] = []
    batcher = DynamicBatcher(_slot(versions), store, 8, 50, 256, on_batch=sizes.append)
    requests = [_ask(f"question {i}") for i in range(12)]
    results = asyncio.run(_serve(batcher, requests))
    assert [r.request_id for r in results] == [r.request_id for r in requests]
    assert all(1 <= r.completion_tokens <= 6 and r.model_version == "1" for r in results)
    assert max(sizes) == 8 and sum(sizes) == 12
    logged = store.read_requests()
    assert sorted(logged["request_id"]) == sorted(r.request_id for r in requests)
    assert (logged["latency_ms"] > 0).all()


def test_batched_answers_equal_one_at_a_time_answers(versions: Versions, tmp_path: Path) -> None:
    slot = _slot(versions)
    texts = ["How do I export?", "Reset my password please, it is urgent", "Hi"]
    alone = [
        slot.generate([slot.render_chat([{"role": "user", "content": t}])], 6, 0.0)[0]
        for t in texts
    ]
    batcher = DynamicBatcher(slot, InferenceStore(str(tmp_path)), 8, 50, 256)
    together = asyncio.run(_serve(batcher, [_ask(t) for t in texts]))
    assert [r.text for r in together] == [a[0] for a in alone]


def test_too_long_prompt_fails_alone(versions: Versions, tmp_path: Path) -> None:
    batcher = DynamicBatcher(_slot(versions), InferenceStore(str(tmp_path)), 8, 50, 32)
    results = asyncio.run(_serve(batcher, [_ask("short"), _ask("word " * 100)]))
    assert results[0].completion_tokens >= 1
    assert isinstance(results[1], PromptTooLongError)
    assert "at most 32" in str(results[1])


def test_mixed_max_tokens_are_each_respected(versions: Versions, tmp_path: Path) -> None:
    batcher = DynamicBatcher(_slot(versions), InferenceStore(str(tmp_path)), 8, 50, 256)
    short, long = asyncio.run(_serve(batcher, [_ask("a", max_tokens=1), _ask("b", max_tokens=8)]))
    assert short.completion_tokens == 1
    assert long.completion_tokens >= 1


def test_slot_swaps_when_the_alias_moves(versions: Versions) -> None:
    versions.current, versions.loads = "1", []
    slot = _slot(versions, refresh_seconds=0.0)
    assert not slot.refresh()
    versions.current = "2"
    assert slot.refresh() and slot.version == "2"
    assert versions.loads == ["1", "2"]
    lazy = _slot(versions, refresh_seconds=3600)
    versions.current = "3"
    assert not lazy.refresh() and lazy.version == "2"  # not checked again before the interval
    assert lazy.refresh(force=True) and lazy.version == "3"
