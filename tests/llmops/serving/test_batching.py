"""The static and continuous batchers and the hot-swap slot on the real tiny model (loaded
directly, no registry)."""

import asyncio
import time
from pathlib import Path

import pytest
import torch
from serving_support import talking_tiny_model

from llmops.serving.batching import (
    ContinuousBatcher,
    DynamicBatcher,
    GenerationRequest,
    PromptRejectedError,
    PromptTooLongError,
)
from llmops.serving.champion import LoadedModel, ModelSlot
from llmops.serving.decoding import Row, RunningBatch
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


def _batcher(
    batching: str, slot: ModelSlot, store: InferenceStore, max_prompt_tokens: int
) -> ContinuousBatcher | DynamicBatcher:
    """A batcher of either kind, 8 rows at most (static: a 5 ms window)."""
    if batching == "continuous":
        return ContinuousBatcher(slot, store, 8, max_prompt_tokens)
    return DynamicBatcher(slot, store, 8, 5, max_prompt_tokens)


async def _serve(batcher: DynamicBatcher, requests: list[GenerationRequest]) -> list:
    worker = asyncio.create_task(batcher.serve())
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


@pytest.mark.parametrize("batching", ["static", "continuous"])
def test_a_batch_that_cannot_be_logged_fails_but_the_batcher_goes_on(
    versions: Versions, tmp_path: Path, batching: str
) -> None:
    in_the_way = tmp_path / "a-file"
    in_the_way.write_text("the log folder cannot be made under a file")
    batcher = _batcher(batching, _slot(versions), InferenceStore(str(in_the_way)), 256)

    async def two_batches() -> list:
        worker = asyncio.create_task(batcher.serve())
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


def test_continuous_short_request_joins_a_running_long_one_and_leaves_first(
    versions: Versions, tmp_path: Path
) -> None:
    slot = _slot(versions, refresh_seconds=3600)
    steps: list[int] = []
    batcher = ContinuousBatcher(slot, InferenceStore(str(tmp_path)), 8, 256, steps.append)
    long, short = _ask("How do I export?", 20), _ask("Hi", 3)
    finished: list[str] = []

    async def scenario() -> list:
        loop = asyncio.get_running_loop()
        started = asyncio.Event()
        long.on_text = lambda _: loop.call_soon_threadsafe(started.set)
        worker = asyncio.create_task(batcher.serve())

        async def answer(request: GenerationRequest) -> object:
            result = await batcher.submit(request)
            finished.append(result.request_id)
            return result

        try:
            running = asyncio.create_task(answer(long))
            await started.wait()  # the long answer is decoding: the short one arrives mid-flight
            return [await answer(short), await running]
        finally:
            worker.cancel()

    short_result, long_result = asyncio.run(scenario())
    assert finished == [short.request_id, long.request_id]
    assert (short_result.completion_tokens, long_result.completion_tokens) == (3, 20)
    assert 2 in steps and steps[0] == 1  # alone at first, then both rows in one decoding step
    assert sum(steps) == 20 - 1 + 3 - 1  # one step per token after each row's prefill token
    # Joining mid-flight (left-padded KV caches stacked) changes no greedy answer.
    assert long_result.text == _alone(slot, "How do I export?", 20)
    assert short_result.text == _alone(slot, "Hi", 3)
    assert [r.text for r in [short_result, long_result]] != ["", ""]


def _last_layer_keys(texts: list[str], versions: Versions, steps: int) -> torch.Tensor:
    """The last layer's cached keys [heads, time, dim] of one row decoded alone."""
    batch = RunningBatch(versions.model, versions.tokenizer)
    batch.join([Row(0, versions.tokenizer(texts[0])["input_ids"], 32, 0.0)])
    for _ in range(steps):
        batch.step()
    return batch.cache.layers[-1].keys[0]


def test_continuous_joined_rows_compute_what_they_compute_alone_and_leave_no_padding(
    versions: Versions,
) -> None:
    tokenizer = versions.tokenizer
    long_ids, short_ids = (tokenizer(t)["input_ids"] for t in ["a b c d e f g h", "hi"])
    batch = RunningBatch(versions.model, tokenizer)
    long, short = Row("long", long_ids, 32, 0.0), Row("short", short_ids, 3, 0.0)
    batch.join([long])
    batch.step()
    batch.step()
    assert batch.join([short]) == []  # arrives mid-flight, left-padded to the long row
    assert batch.mask.shape == (2, len(long_ids) + 2)
    assert batch.mask[1].tolist() == [0] * (len(long_ids) + 2 - len(short_ids)) + [1] * len(
        short_ids
    )
    assert batch.step() == []
    # Deepest layer: its keys come through every attention below, so attending to the padding
    # or a wrong position would show. Each row's real columns equal its own decoding alone.
    keys = batch.cache.layers[-1].keys
    assert torch.allclose(keys[0], _last_layer_keys(["a b c d e f g h"], versions, 3), atol=1e-5)
    alone = _last_layer_keys(["hi"], versions, 1)
    assert torch.allclose(keys[1, :, -alone.shape[1] :], alone, atol=1e-5)
    assert batch.step() == [short]  # its 3rd token: it leaves that step, the long one goes on
    # The short row's padding columns left with it: the cache holds the long row exactly.
    assert batch.mask.shape == (1, len(long_ids) + 4) and bool(batch.mask.all())
    assert batch.cache.layers[0].keys.shape[:3] == (1, keys.shape[1], len(long_ids) + 4)
    assert len(short.tokens) == 3 and len(long.tokens) == 5


def test_continuous_newcomers_reuse_the_cached_prefix_and_compute_what_they_compute_alone(
    versions: Versions,
) -> None:
    tokenizer = versions.tokenizer
    shared = "a b c d e f g h i j"  # 10 tokens, then each prompt's own
    first_ids, a_ids, b_ids = (
        tokenizer(f"{shared} {own}")["input_ids"] for own in ["k l m", "x y", "q"]
    )
    batch = RunningBatch(versions.model, tokenizer)
    batch.join([Row("first", first_ids, 32, 0.0)])
    assert batch.prefix_ids == first_ids  # a miss stores its prompt
    batch.step()
    assert batch.join([Row("a", a_ids, 32, 0.0), Row("b", b_ids, 32, 0.0)]) == []
    # The hit copied the 10 shared tokens in and cut the entry down to them.
    assert batch.prefix_ids == tokenizer(shared)["input_ids"] and len(batch.prefix_ids) == 10
    assert batch.prefix_kv[0][0].shape[2] == 10
    assert (len(a_ids), len(b_ids)) == (12, 11)
    # [left padding to the running row | prefix | padding to the longer newcomer | own tokens]
    assert batch.mask[2].tolist() == [0, 0] + [1] * 10 + [0] + [1]
    batch.step()
    keys = batch.cache.layers[-1].keys
    for row, text in [(1, f"{shared} x y"), (2, f"{shared} q")]:
        alone = _last_layer_keys([text], versions, 1)
        assert torch.allclose(keys[row][:, batch.mask[row].bool()], alone, atol=1e-5)


@pytest.mark.parametrize("batching", ["static", "continuous"])
def test_both_batchers_fail_a_bad_prompt_alone(
    versions: Versions, tmp_path: Path, batching: str
) -> None:
    store = InferenceStore(str(tmp_path))
    batcher = _batcher(batching, _slot(versions), store, 32)
    empty = GenerationRequest("", 6, 0.0, "completions")
    results = asyncio.run(_serve(batcher, [_ask("short"), empty, _ask("word " * 100)]))
    assert results[0].completion_tokens >= 1
    assert isinstance(results[1], PromptRejectedError) and "empty" in str(results[1])
    assert isinstance(results[2], PromptTooLongError) and "at most 32" in str(results[2])
    assert list(store.read_requests()["request_id"]) == [results[0].request_id]


class SlowStore(InferenceStore):
    """The local store with an object store's write latency (what S3 adds to each part)."""

    def append_requests(self, rows):  # noqa: ANN001, ANN201 - InferenceStore's signature
        time.sleep(0.3)
        super().append_requests(rows)


def test_continuous_batching_logs_in_group_commits_and_answers_only_logged_requests(
    versions: Versions, tmp_path: Path
) -> None:
    store = SlowStore(str(tmp_path))
    batcher = ContinuousBatcher(_slot(versions, refresh_seconds=3600), store, 8, 256)
    # Eight answers of 1 to 8 tokens: each finishes at its own decoding step.
    requests = [_ask(f"question {n}", max_tokens=n) for n in range(1, 9)]
    logged_when_answered: list[bool] = []

    async def answer(request: GenerationRequest) -> None:
        result = await batcher.submit(request)
        logged = set(store.read_requests()["request_id"])
        logged_when_answered.append(result.request_id in logged)

    async def scenario() -> None:
        worker = asyncio.create_task(batcher.serve())
        try:
            await asyncio.gather(*(answer(r) for r in requests))
        finally:
            worker.cancel()

    asyncio.run(scenario())
    assert logged_when_answered == [True] * 8
    assert sorted(store.read_requests()["request_id"]) == sorted(r.request_id for r in requests)
    # Rows finishing while a part is written wait for the next part: fewer parts than answers.
    parts = list((tmp_path / "requests").rglob("*.jsonl"))
    assert 1 <= len(parts) <= 4
