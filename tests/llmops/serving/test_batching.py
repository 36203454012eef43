"""The dynamic batcher and hot-swap slot on the real tiny model (loaded directly, no registry)."""

import asyncio
from pathlib import Path

import pytest
from serving_support import talking_tiny_model

from llmops.serving.batching import (
    DynamicBatcher,
    GenerationRequest,
    PromptRejectedError,
    PromptTooLongError,
)
from llmops.serving.champion import LoadedModel, ModelSlot
from llmops.serving.store import InferenceStore


class Versions:
    """Stands in for the registry alias: which version is current, and what was loaded."""

    def __init__(self, workdir: Path) -> None:
        self.current = "1"
        self.loads: list[str] = []
        self.model, self.tokenizer = talking_tiny_model(workdir)

    def load(self, name: str, alias: str) -> LoadedModel:
        self.loads.append(self.current)
        return LoadedModel(name, self.current, "tiny-random", self.model, self.tokenizer)

    def version(self, name: str, alias: str) -> str | None:
        return self.current


@pytest.fixture(scope="module")
def versions(tmp_path_factory: pytest.TempPathFactory) -> Versions:
    return Versions(tmp_path_factory.mktemp("versions"))


def _slot(versions: Versions, refresh_seconds: float = 0.0) -> ModelSlot:
    return ModelSlot("m", "champion", refresh_seconds, versions.load, versions.version)


def _ask(text: str, max_tokens: int = 6) -> GenerationRequest:
    return GenerationRequest([{"role": "user", "content": text}], max_tokens, 0.0, "chat")


def _alone(slot: ModelSlot, text: str, max_tokens: int = 6) -> str:
    """The answer to one question generated on its own."""
    prompt = slot.render_chat([{"role": "user", "content": text}])
    return slot.generate([prompt], max_tokens, 0.0)[0][0]


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
    alone = [_alone(slot, t) for t in texts]
    assert len(set(alone)) > 1 and all(alone)  # distinct, non-empty answers: a real comparison
    batcher = DynamicBatcher(slot, InferenceStore(str(tmp_path)), 8, 50, 256)
    together = asyncio.run(_serve(batcher, [_ask(t) for t in texts]))
    assert [r.text for r in together] == alone


def test_streamed_request_gets_pieces_on_the_loop_while_sharing_a_batch(
    versions: Versions, tmp_path: Path
) -> None:
    slot = _slot(versions)
    sizes: list[int] = []
    batcher = DynamicBatcher(slot, InferenceStore(str(tmp_path)), 8, 50, 256, sizes.append)
    streamed, plain = _ask("How do I export?", 12), _ask("Hi", 12)
    received: list[str] = []

    async def scenario() -> list:
        loop = asyncio.get_running_loop()
        # What the app does: hop from the generation thread onto the event loop.
        streamed.on_text = lambda piece: loop.call_soon_threadsafe(received.append, piece)
        return await _serve(batcher, [streamed, plain])

    streamed_result, plain_result = asyncio.run(scenario())
    assert sizes == [2]  # one batch for both
    assert len(received) > 1 and "".join(received) == streamed_result.text
    assert streamed_result.text == _alone(slot, "How do I export?", 12)
    assert plain_result.text == _alone(slot, "Hi", 12)  # the non-streamed row is unaffected


def test_too_long_prompt_fails_alone(versions: Versions, tmp_path: Path) -> None:
    batcher = DynamicBatcher(_slot(versions), InferenceStore(str(tmp_path)), 8, 50, 32)
    results = asyncio.run(_serve(batcher, [_ask("short"), _ask("word " * 100)]))
    assert results[0].completion_tokens >= 1
    assert isinstance(results[1], PromptTooLongError)
    assert "at most 32" in str(results[1])


def test_empty_prompt_fails_alone_instead_of_its_whole_batch(
    versions: Versions, tmp_path: Path
) -> None:
    batcher = DynamicBatcher(_slot(versions), InferenceStore(str(tmp_path)), 8, 50, 32)
    empty = GenerationRequest("", 6, 0.0, "completions")
    results = asyncio.run(_serve(batcher, [_ask("short"), empty, _ask("other")]))
    assert isinstance(results[1], PromptRejectedError) and results[1].status == 422
    assert "empty" in str(results[1])
    assert results[0].completion_tokens >= 1 and results[2].completion_tokens >= 1


def test_a_batch_that_cannot_be_logged_fails_but_the_batcher_goes_on(
    versions: Versions, tmp_path: Path
) -> None:
    in_the_way = tmp_path / "a-file"
    in_the_way.write_text("the log folder cannot be made under a file")
    batcher = DynamicBatcher(_slot(versions), InferenceStore(str(in_the_way)), 8, 5, 256)

    async def two_batches() -> list:
        worker = asyncio.create_task(batcher.run())
        try:
            # A dead worker would leave requests waiting: a TimeoutError instead of an OSError.
            first = asyncio.wait_for(batcher.submit(_ask("a")), 60)
            second = asyncio.wait_for(batcher.submit(_ask("b")), 60)
            return [
                *await asyncio.gather(first, return_exceptions=True),
                *await asyncio.gather(second, return_exceptions=True),
            ]
        finally:
            worker.cancel()

    first, second = asyncio.run(two_batches())
    assert isinstance(first, OSError) and isinstance(second, OSError)


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
