"""Batching: concurrent requests share the model, off the event loop, on one generation thread.

Two batchers, chosen by ServeConfig.batching:
- `ContinuousBatcher` (the default): requests join the running batch between decoding steps and
  leave it the step they finish (llmops/serving/decoding.py), so a short answer never waits for
  a long one and a new request starts within one step.
- `DynamicBatcher` ("static"): a batch is taken and `generate` runs it to its end.

The static one waits for the first queued request, then gathers more for at most `window_ms`
(or until `max_batch`), and runs the batch. Requests with different (max_tokens, temperature)
go into separate generate calls of the same round. While a batch runs, new requests queue up
and form the next batch. In both, streamed and non-streamed requests share batches: a streamed
one gets its pieces through `on_text` as tokens come out.

Written by hand because the serving libraries that batch (vLLM, TGI, Ray Serve) are whole
servers with their own model loading, not a component we can put behind our FastAPI app.
"""

import asyncio
import itertools
import logging
import threading
import time
import uuid
from collections import defaultdict
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from jinja2 import TemplateError

from llmops.model.generation import RowText, TextSink
from llmops.serving.champion import CHAMPION, LoadedModel, ModelSlot
from llmops.serving.decoding import Row, RunningBatch
from llmops.serving.store import InferenceStore, utc_now

log = logging.getLogger(__name__)


_Queued = tuple["GenerationRequest", "asyncio.Future[GenerationResult]"]
# A request's future and what it gets: its result, or the error it fails with.
_Outcome = tuple["asyncio.Future[GenerationResult]", Any]


def _resolve(outcomes: list[_Outcome]) -> None:
    """Hand each waiting caller its result or error (one that went away gets nothing)."""
    for future, outcome in outcomes:
        if future.done():  # cancelled by its caller, or failed with its round
            continue
        if isinstance(outcome, Exception):
            future.set_exception(outcome)
        else:
            future.set_result(outcome)


class ReleaseEndedError(RuntimeError):
    """A shadow copy for a challenger that is no longer served."""


class PromptRejectedError(ValueError):
    """A prompt this server will not answer; `status` is the HTTP status the caller gets."""

    status = 422


class PromptTooLongError(PromptRejectedError):
    """The rendered prompt has more tokens than the server accepts."""

    status = 413


@dataclass
class GenerationRequest:
    """One request waiting for its answer. `prompt` is chat messages or raw completion text.

    `on_text`, for streamed requests, is called on the generation thread with each new piece of
    the answer while its batch runs (so it must be thread-safe); the result still comes whole.
    """

    prompt: list[dict[str, str]] | str
    max_tokens: int
    temperature: float
    endpoint: str
    key_name: str | None = None  # which API key asked (None with keys switched off)
    flagged: str | None = None  # the guardrail's category, when it flagged the prompt
    variant: str = CHAMPION  # which model answers: champion, or challenger during a release
    shadow: bool = False  # a copy for the challenger in a shadow release: logged, never returned
    on_text: TextSink | None = None
    request_id: str = field(default_factory=lambda: f"req-{uuid.uuid4().hex}")
    received: float = field(default_factory=time.perf_counter)


@dataclass(frozen=True)
class GenerationResult:
    """What a request gets back."""

    request_id: str
    model_version: str
    text: str
    prompt_tokens: int
    completion_tokens: int
    latency_ms: float
    variant: str = CHAMPION


class _Batcher:
    """What both batchers share: the queue, the one generation thread, the prompt checks."""

    def __init__(
        self,
        slot: ModelSlot,
        store: InferenceStore,
        max_batch: int,
        max_prompt_tokens: int,
        on_batch: Callable[[int], None] | None = None,
    ) -> None:
        self.slot, self.store, self.on_batch = slot, store, on_batch
        self.max_batch, self.max_prompt_tokens = max_batch, max_prompt_tokens
        # One thread: torch already uses every core per call, and the slot must not swap mid-step.
        self.executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="generate")
        # Shadow copies (priority 1) are served only when no live request (0) waits, so a live
        # request never queues behind a copy.
        self.queue: asyncio.PriorityQueue[tuple[int, int, _Queued]] = asyncio.PriorityQueue()
        self.arrivals = itertools.count()
        # Answered requests wait here for their log rows to be written (a group commit): off the
        # generation thread, one part per write rather than per round, since continuous batching
        # finishes a row or two a round, and an object store takes a request per part.
        self.to_log: asyncio.Queue[tuple[list[dict[str, Any]], list[_Outcome]]] = asyncio.Queue()
        self.log_executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="inference-log")

    async def serve(self) -> None:
        """Serve requests and write their log until cancelled."""
        writer = asyncio.create_task(self._write_log())
        try:
            await self.run()
        finally:
            writer.cancel()

    def close(self) -> None:
        """Wait for the generation and log threads to finish their work in hand."""
        self.executor.shutdown(wait=True)
        self.log_executor.shutdown(wait=True)

    async def _write_log(self) -> None:
        """Write the rows of every answered request waiting, as one part, then answer them: a
        request is answered once it is logged. A failed write fails its requests, not the
        server."""
        loop = asyncio.get_running_loop()
        while True:
            waiting = [await self.to_log.get()]
            while not self.to_log.empty():
                waiting.append(self.to_log.get_nowait())
            rows = [row for batch, _ in waiting for row in batch]
            outcomes = [outcome for _, batch in waiting for outcome in batch]
            try:
                await loop.run_in_executor(self.log_executor, self.store.append_requests, rows)
            except Exception as error:  # e.g. an unwritable log
                log.exception("logging %d requests failed", len(rows))
                outcomes = [(future, error) for future, _ in outcomes]
            _resolve(outcomes)

    def _answer_logged(self, rows: list[dict[str, Any]], outcomes: list[_Outcome]) -> None:
        """Answer these requests once their log rows are written (at once when none are)."""
        if rows:
            self.to_log.put_nowait((rows, outcomes))
        else:
            _resolve(outcomes)

    async def submit(self, request: GenerationRequest) -> GenerationResult:
        """Queue one request and wait for its answer."""
        future: asyncio.Future[GenerationResult] = asyncio.get_running_loop().create_future()
        await self.queue.put((int(request.shadow), next(self.arrivals), (request, future)))
        self._arrived()
        return await future

    async def call(self, fn: Any, *args: Any) -> Any:
        """Run `fn` on the generation thread (e.g. a model refresh), in order with the model's
        work (between two batches, or two decoding steps)."""
        self._arrived()
        return await asyncio.get_running_loop().run_in_executor(self.executor, fn, *args)

    def _arrived(self) -> None:
        """Called on the event loop when a request or a call starts waiting for the thread."""

    def _refresh(self) -> None:
        try:
            self.slot.refresh()
        except Exception:  # a broken new version must not take the server down
            log.exception("hot swap failed; still serving version %s", self.slot.version)

    def _admit(self, request: GenerationRequest) -> str:
        """The prompt text to answer `request` with, on the variant that still serves it;
        PromptRejectedError (or ReleaseEndedError for a shadow copy) when it cannot be served."""
        if not self.slot.serves(request.variant):  # the release ended since it was routed
            if request.shadow:
                raise ReleaseEndedError("the release ended; shadow copy dropped")
            request.variant = CHAMPION
        return self._render(request)

    def _render(self, request: GenerationRequest) -> str:
        """The prompt text the model continues; PromptRejectedError when it cannot be served."""
        if isinstance(request.prompt, str):
            prompt = request.prompt
        else:
            try:
                prompt = self.slot.render_chat(request.prompt, request.variant)
            except TemplateError as error:  # templates raise on conversations they refuse
                raise PromptRejectedError(f"messages: {error}") from error
        n_tokens = self.slot.count_tokens(prompt, request.variant)
        if n_tokens == 0:
            raise PromptRejectedError("prompt: empty; send at least one token of text")
        if n_tokens > self.max_prompt_tokens:
            raise PromptTooLongError(
                f"prompt has {n_tokens} tokens; this server accepts at most "
                f"{self.max_prompt_tokens}"
            )
        return prompt


class DynamicBatcher(_Batcher):
    """Queue requests, answer them in batches that run to their end, log every answered one."""

    def __init__(
        self,
        slot: ModelSlot,
        store: InferenceStore,
        max_batch: int,
        window_ms: float,
        max_prompt_tokens: int,
        on_batch: Callable[[int], None] | None = None,
    ) -> None:
        super().__init__(slot, store, max_batch, max_prompt_tokens, on_batch)
        self.window_s = window_ms / 1000

    async def run(self) -> None:
        """Serve batches until cancelled."""
        loop = asyncio.get_running_loop()
        while True:
            priority, _, first = await self.queue.get()
            batch = [first]
            deadline = loop.time() + self.window_s
            while len(batch) < self.max_batch:
                timeout = deadline - loop.time()
                if timeout <= 0 and self.queue.empty():
                    break
                try:
                    queued = await asyncio.wait_for(self.queue.get(), max(timeout, 0))
                except TimeoutError:
                    break
                if queued[0] != priority:  # a live request arrived while shadows were batched
                    self.queue.put_nowait(queued)
                    break
                batch.append(queued[2])
            if self.on_batch is not None:
                self.on_batch(len(batch))
            live = [(r, f) for r, f in batch if not f.cancelled()]
            try:
                outcomes, rows = await loop.run_in_executor(
                    self.executor, self._answer, [r for r, _ in live]
                )
            except Exception as error:  # a bug in a batch must not stop the server
                log.exception("batch of %d failed", len(live))
                outcomes, rows = [error] * len(live), []
            self._answer_logged(rows, [(f, o) for (_, f), o in zip(live, outcomes, strict=True)])

    def _answer(
        self, requests: list[GenerationRequest]
    ) -> tuple[list[GenerationResult | Exception], list[dict[str, Any]]]:
        """On the generation thread: refresh the model, generate per group; the outcome of each
        request and the batch's log rows."""
        outcomes: dict[int, GenerationResult | Exception] = {}
        self._refresh()
        groups: dict[tuple[str, int, float], list[tuple[int, str]]] = defaultdict(list)
        for index, request in enumerate(requests):
            # Checked one by one: a bad prompt must fail alone, not the generate call it would join.
            try:
                prompt = self._admit(request)
            except (PromptRejectedError, ReleaseEndedError) as error:
                outcomes[index] = error
                continue
            groups[(request.variant, request.max_tokens, request.temperature)].append(
                (index, prompt)
            )
        failed: list[tuple[GenerationRequest, str]] = []
        for (variant, max_tokens, temperature), members in groups.items():
            version = self.slot.variant(variant).version
            try:
                answers = self.slot.generate(
                    [p for _, p in members],
                    max_tokens,
                    temperature,
                    [requests[index].on_text for index, _ in members],
                    variant,
                )
            except Exception as error:  # reported to each caller as a 500, the server goes on
                outcomes.update({index: error for index, _ in members})
                failed += [(requests[index], version) for index, _ in members]
                continue
            done = time.perf_counter()
            for (index, _), (text, n_prompt, n_completion) in zip(members, answers, strict=True):
                request = requests[index]
                outcomes[index] = GenerationResult(
                    request.request_id,
                    version,
                    text,
                    n_prompt,
                    n_completion,
                    (done - request.received) * 1000,
                    variant,
                )
        answered = [
            _log_row(requests[i], outcome)
            for i, outcome in sorted(outcomes.items())
            if isinstance(outcome, GenerationResult)
        ]
        # Failed generations are logged too: a release is judged on its variant's error rate.
        rows = answered + [_error_row(r, v) for r, v in failed]
        return [outcomes[i] for i in range(len(requests))], rows


class ContinuousBatcher(_Batcher):
    """Queue requests; each round on the generation thread admits the waiting ones into the
    running batch (up to max_batch rows), decodes one token for every row and answers the rows
    that finished, logging them. One running batch per loaded model: a hot swap sends new
    requests to the new version while rows in flight finish on the one they started on, and a
    release's challenger decodes in its own batch, step for step beside the champion's."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:  # the parameters of _Batcher
        super().__init__(*args, **kwargs)
        # Keyed by the LoadedModel's id; touched only on the generation thread.
        self.batches: dict[int, tuple[LoadedModel, RunningBatch]] = {}
        self.wake = threading.Event()  # a request or a call waits: end the round after a step

    def _arrived(self) -> None:
        self.wake.set()

    @property
    def rows(self) -> int:
        return sum(len(batch) for _, batch in self.batches.values())

    async def run(self) -> None:
        """Serve rounds until cancelled."""
        loop = asyncio.get_running_loop()
        while True:
            waiting: list[_Queued] = []
            self.wake.clear()  # before draining: what arrives after it wakes the round
            if not self.rows:  # idle: sleep until a request comes
                waiting.append((await self.queue.get())[2])
            while self.rows + len(waiting) < self.max_batch and not self.queue.empty():
                waiting.append(self.queue.get_nowait()[2])
            try:
                settled, rows, logged = await loop.run_in_executor(
                    self.executor, self._advance, waiting
                )
            except Exception as error:  # a bug in a round must not stop the server
                log.exception("decoding round failed")
                # The executor is idle again, so the batches can be dropped from here.
                held = [row.owner.future for _, b in self.batches.values() for row in b.rows]
                self.batches.clear()
                settled, rows, logged = [(f, error) for f in held + [f for _, f in waiting]], [], []
            _resolve(settled)
            self._answer_logged(rows, logged)

    def _advance(
        self, waiting: list[_Queued]
    ) -> tuple[list[_Outcome], list[dict[str, Any]], list[_Outcome]]:
        """On the generation thread: admit `waiting`, decode one step, settle finished rows:
        the requests refused at admission, and the log rows and outcomes of those answered."""
        settled: list[_Outcome] = []
        for _, batch in self.batches.values():  # callers that went away free their row now
            batch.evict([row for row in batch.rows if row.owner.future.cancelled()])
        if waiting:
            self._refresh()  # before admitting, so new requests go to the current version
        joining: dict[int, list[Row]] = defaultdict(list)
        for request, future in waiting:
            if future.cancelled():
                continue
            try:
                prompt = self._admit(request)
            except (PromptRejectedError, ReleaseEndedError) as error:
                settled.append((future, error))  # fails alone: nothing of it reached the model
                continue
            loaded = self.slot.variant(request.variant)
            self.batches.setdefault(
                id(loaded), (loaded, RunningBatch(loaded.model, loaded.tokenizer))
            )
            ids = loaded.tokenizer(prompt, add_special_tokens=False)["input_ids"]
            stream = RowText(request.on_text) if request.on_text is not None else None
            owner = _InFlight(request, future, loaded)
            joining[id(loaded)].append(
                Row(owner, ids, request.max_tokens, request.temperature, stream)
            )
        finished: list[Row] = []
        failed: list[tuple[Row, Exception]] = []
        # Step on while nothing ended and nothing new waits: one thread hop per event, not per
        # token (a hop costs milliseconds when the cores are busy).
        while True:
            self._step(joining, finished, failed)
            joining = {}
            if settled or finished or failed or not self.rows or self.wake.is_set():
                return settled, *self._settle(finished, failed)

    def _step(
        self,
        joining: dict[int, list[Row]],
        finished: list[Row],
        failed: list[tuple[Row, Exception]],
    ) -> None:
        """Prefill the joining rows and decode one token for every row, batch by batch;
        collects the rows that ended in `finished` and those of a failed batch in `failed`."""
        stepped = 0
        for key, (loaded, batch) in list(self.batches.items()):
            if loaded.adapter is not None:
                loaded.model.set_adapter(loaded.adapter)  # on the one generation thread: no race
            try:
                if key in joining:
                    finished += batch.join(joining[key])
                stepped += len(batch)
                if len(batch):
                    finished += batch.step()
            except Exception as error:  # a failed forward leaves the cache unknown: fail its rows
                log.exception("decoding step on version %s failed", loaded.version)
                rows = batch.rows + [r for r in joining.get(key, []) if r not in batch.rows]
                failed += [(row, error) for row in rows]
                del self.batches[key]
                continue
            # An idle batch of a served model stays, with its cached prompt prefix; a swapped-out
            # model goes once its last row is done.
            if (
                not len(batch)
                and loaded is not self.slot.loaded
                and loaded is not self.slot.challenger
            ):
                del self.batches[key]
        if self.on_batch is not None and stepped:
            self.on_batch(stepped)

    def _settle(
        self, finished: list[Row], failed: list[tuple[Row, Exception]]
    ) -> tuple[list[dict[str, Any]], list[_Outcome]]:
        """The log rows and outcomes of the finished rows and of the failed ones (failed
        generations are logged too: a release is judged on its variant's error rate)."""
        done = time.perf_counter()
        outcomes: list[_Outcome] = []
        rows: list[dict[str, Any]] = []
        for row in finished:
            request, loaded = row.owner.request, row.owner.loaded
            result = GenerationResult(
                request.request_id,
                loaded.version,
                row.text(loaded.tokenizer),
                len(row.prompt_ids),
                len(row.tokens),
                (done - request.received) * 1000,
                request.variant,
            )
            outcomes.append((row.owner.future, result))
            rows.append(_log_row(request, result))
        for row, error in failed:
            outcomes.append((row.owner.future, error))
            rows.append(_error_row(row.owner.request, row.owner.loaded.version))
        return rows, outcomes


@dataclass(frozen=True)
class _InFlight:
    """Who a running row answers, and on which loaded model it started."""

    request: GenerationRequest
    future: "asyncio.Future[GenerationResult]"
    loaded: LoadedModel


def _log_row(request: GenerationRequest, result: GenerationResult) -> dict[str, Any]:
    """The inference-log record of one answered request."""
    return {
        **_request_fields(request, result.model_version),
        "response": result.text,
        "prompt_tokens": result.prompt_tokens,
        "completion_tokens": result.completion_tokens,
        "latency_ms": round(result.latency_ms, 2),
        "error": None,
    }


def _error_row(request: GenerationRequest, version: str) -> dict[str, Any]:
    """The inference-log record of a request whose generation failed (a 500 to its caller)."""
    return {
        **_request_fields(request, version),
        "response": "",
        "prompt_tokens": 0,
        "completion_tokens": 0,
        "latency_ms": round((time.perf_counter() - request.received) * 1000, 2),
        "error": "server_error",
    }


def _request_fields(request: GenerationRequest, version: str) -> dict[str, Any]:
    messages = (
        [{"role": "user", "content": request.prompt}]
        if isinstance(request.prompt, str)
        else request.prompt
    )
    return {
        "timestamp": utc_now(),
        "request_id": request.request_id,
        "model_version": version,
        "variant": request.variant,
        "shadow": request.shadow,
        "endpoint": request.endpoint,
        "key_name": request.key_name,
        "flagged": request.flagged,
        "messages": messages,
    }
