"""The OpenAI-compatible REST app: chat/completions and completions (both with token-by-token
SSE streaming), models, feedback, health, Prometheus metrics and admin calls, behind bearer API
keys with roles and per-key quotas.

Built by `create_app`; `flows/serve.py` runs it under uvicorn. Any OpenAI client works against
`http://HOST:PORT/v1`.
"""

import asyncio
import json
import logging
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from fastapi import Depends, FastAPI, Header, HTTPException, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response, StreamingResponse
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)
from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    field_validator,
    model_validator,
)
from starlette.routing import Match

from llmops.governance import audit
from llmops.governance.keys import KeyStore
from llmops.governance.quotas import QuotaExceededError, Quotas, token_bound
from llmops.serving.access import AccessDeniedError, Caller, KeyRing
from llmops.serving.batching import (
    ContinuousBatcher,
    DynamicBatcher,
    GenerationRequest,
    GenerationResult,
    PromptRejectedError,
)
from llmops.serving.champion import CHALLENGER, ModelSlot
from llmops.serving.guardrails import Guardrail, Screening, blocked_error, guardrail_action
from llmops.serving.store import InferenceStore, redact_text, utc_now

log = logging.getLogger("llmops.serving")


@dataclass(frozen=True)
class ServerSettings:
    """What the app enforces; filled from ServeConfig by the serve flow."""

    api_key: (
        SecretStr | None
    )  # the single admin key ($LLMOPS_API_KEY); None with key_store None: no keys
    max_body_bytes: int
    max_tokens_limit: int
    default_max_tokens: int
    max_prompt_tokens: int
    max_batch: int
    batch_window_ms: float
    log_prompts: bool = False
    key_store: KeyStore | None = None  # keys created with `llmops keys`
    guardrail: Guardrail | None = None  # screens prompts before generation; None: off
    keys_refresh_seconds: float = 5.0
    api_key_name: str = "LLMOPS_API_KEY"  # the name the single key goes by in logs and the audit
    batching: Literal["continuous", "static"] = "continuous"  # see ServeConfig.batching


def _well_formed(text: str) -> str:
    """JSON can carry lone UTF-16 surrogates (\\ud800); no tokenizer or log file takes them."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as error:
        raise ValueError("must be valid Unicode text (a lone surrogate escape was sent)") from error
    return text


def _greedy_when_tiny(temperature: float) -> float:
    """Sampling at a temperature this close to 0 overflows float32 logits (inf/nan) and is
    greedy decoding in the limit anyway, so it decodes greedily."""
    return 0.0 if temperature < 1e-3 else temperature


Text = Annotated[str, AfterValidator(_well_formed)]
Temperature = Annotated[float, Field(ge=0.0, le=2.0), AfterValidator(_greedy_when_tiny)]


class ChatMessage(BaseModel):
    role: Literal["system", "user", "assistant"]
    content: Text


class ChatCompletionRequest(BaseModel):
    # OpenAI clients send many optional knobs (top_p, n, ...); unknown ones are ignored.
    model_config = ConfigDict(extra="ignore")
    model: Text
    messages: list[ChatMessage] = Field(min_length=1)
    max_tokens: int | None = Field(None, ge=1)
    max_completion_tokens: int | None = Field(None, ge=1)
    temperature: Temperature = 0.0
    stream: bool = False
    stream_options: dict[str, Any] | None = None
    user: str | None = Field(None, max_length=256, description="End user, for sticky canaries.")


class CompletionRequest(BaseModel):
    model_config = ConfigDict(extra="ignore")
    model: Text
    prompt: str | list[str]
    max_tokens: int | None = Field(None, ge=1)
    temperature: Temperature = 0.0
    stream: bool = False
    stream_options: dict[str, Any] | None = None
    user: str | None = Field(None, max_length=256, description="End user, for sticky canaries.")

    @field_validator("prompt")
    @classmethod
    def _prompt_well_formed(cls, prompt: str | list[str]) -> str | list[str]:
        for text in [prompt] if isinstance(prompt, str) else prompt:
            _well_formed(text)
        return prompt


class FeedbackRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    request_id: Text = Field(min_length=1, max_length=200)
    rating: Literal["up", "down"] | None = Field(None, description="Thumbs up or down.")
    score: float | None = Field(None, ge=0.0, le=1.0, description="A score in [0, 1].")
    corrected_answer: Text | None = Field(None, min_length=1, max_length=20_000)

    @model_validator(mode="after")
    def _needs_a_rating(self) -> "FeedbackRequest":
        if self.rating is None and self.score is None and self.corrected_answer is None:
            raise ValueError("give a rating, a score or a corrected_answer")
        return self


class _Metrics:
    """Prometheus series for one app (own registry, so several apps in a process don't clash)."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "llmops_requests",
            "Requests by endpoint and status",
            ["endpoint", "status"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "llmops_request_latency_seconds",
            "End-to-end latency",
            ["endpoint"],
            registry=self.registry,
        )
        self.first_token = Histogram(
            "llmops_time_to_first_token_seconds",
            "Time from request to its first streamed piece (or its end, for an empty answer)",
            ["endpoint"],
            registry=self.registry,
        )
        self.tokens = Counter("llmops_tokens", "Tokens processed", ["kind"], registry=self.registry)
        self.key_tokens = Counter(
            "llmops_key_tokens",
            "Tokens processed per API key and model version (cost accounting)",
            ["key", "model_version", "kind"],
            registry=self.registry,
        )
        self.key_requests = Counter(
            "llmops_key_requests",
            "Requests per API key by outcome (quota refusals included)",
            ["key", "outcome"],
            registry=self.registry,
        )
        self.errors = Counter(
            "llmops_errors", "Failed requests", ["endpoint"], registry=self.registry
        )
        self.guardrail = Counter(
            "llmops_guardrail",
            "Requests the guardrail flagged or blocked, by category",
            ["category", "action"],
            registry=self.registry,
        )
        # Per variant (champion, challenger): what a release is judged on.
        self.variant_requests = Counter(
            "llmops_variant_requests",
            "Generations by variant, outcome (answered, error) and shadow (copy, never returned)",
            ["variant", "outcome", "shadow"],
            registry=self.registry,
        )
        self.variant_latency = Histogram(
            "llmops_variant_latency_seconds",
            "Generation latency by variant",
            ["variant", "shadow"],
            registry=self.registry,
        )
        self.variant_tokens = Counter(
            "llmops_variant_tokens",
            "Tokens by variant",
            ["variant", "kind"],
            registry=self.registry,
        )
        self.variant_feedback = Counter(
            "llmops_variant_feedback",
            "Feedback by the variant that answered (positive: score >= 0.5)",
            ["variant", "sentiment"],
            registry=self.registry,
        )
        self.batch = Histogram(
            "llmops_batch_size",
            "Requests per generate batch (static) or per decoding step (continuous)",
            registry=self.registry,
            buckets=(1, 2, 4, 8, 16, 32, 64),
        )
        self.version = Gauge(
            "llmops_model_info",
            "Served model version",
            ["model", "version"],
            registry=self.registry,
        )


def _error(
    status: int, message: str, kind: str, headers: dict[str, str] | None = None
) -> JSONResponse:
    """An error body in OpenAI's shape, which its clients turn into typed exceptions."""
    return JSONResponse(
        {"error": {"message": message, "type": kind, "code": status}},
        status_code=status,
        headers=headers,
    )


def create_app(
    settings: ServerSettings,
    slot: ModelSlot,
    store: InferenceStore,
    on_feedback: Callable[[dict[str, Any]], None] | None = None,
    on_abuse: Callable[[str, str | None, str, str], None] | None = None,
) -> FastAPI:
    """The app serving `slot`'s model, logging to `store`, calling `on_feedback` per feedback
    and `on_abuse(category, key_name, action, version)` per flagged or blocked request."""
    metrics = _Metrics()
    keyring = KeyRing(settings.key_store, settings.api_key, settings.api_key_name)
    quotas = Quotas()
    batcher: ContinuousBatcher | DynamicBatcher = (
        ContinuousBatcher(
            slot,
            store,
            settings.max_batch,
            settings.max_prompt_tokens,
            on_batch=metrics.batch.observe,
        )
        if settings.batching == "continuous"
        else DynamicBatcher(
            slot,
            store,
            settings.max_batch,
            settings.batch_window_ms,
            settings.max_prompt_tokens,
            on_batch=metrics.batch.observe,
        )
    )

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        await asyncio.to_thread(keyring.reload)
        worker = asyncio.create_task(batcher.serve())
        key_reloads = asyncio.create_task(reload_keys())
        model_checks = asyncio.create_task(follow_registry())
        yield
        model_checks.cancel()
        key_reloads.cancel()
        worker.cancel()
        batcher.close()

    async def follow_registry() -> None:
        """Check the alias and the release while idle too (batches check before they run), so a
        promotion or a release is loaded before the next request instead of during it."""
        while True:
            await asyncio.sleep(max(slot.refresh_seconds, 0.1))  # 0 means "before every batch"
            try:
                await batcher.call(slot.refresh)
            except Exception:  # a broken new version must not take the server down
                log.exception("registry check failed; still serving version %s", slot.version)

    async def reload_keys() -> None:
        """A revoked or new key takes effect within one refresh, without a restart."""
        while True:
            await asyncio.sleep(settings.keys_refresh_seconds)
            await asyncio.to_thread(keyring.reload)

    app = FastAPI(title="llmops serving", lifespan=lifespan)
    app.state.batcher = batcher

    async def caller(request: Request) -> Caller:
        """The key's owner, if its role may call this route (401 without a valid key, 403 with
        a key whose role may not)."""
        try:
            # Dependencies run after routing: the matched route's name is in the scope.
            endpoint = request.scope["route"].name
            return keyring.identify(request.headers.get("authorization", ""), endpoint)
        except AccessDeniedError as error:
            raise HTTPException(error.status, str(error)) from error

    async def screen(request: GenerationRequest, who: Caller) -> JSONResponse | None:
        """Screen the prompt (every message of a chat) before generation: the 400 to send when
        the policy blocks it, else None (a flagged request is answered and recorded)."""
        if settings.guardrail is None:
            return None
        text = (
            request.prompt
            if isinstance(request.prompt, str)
            else "\n".join(m["content"] for m in request.prompt)
        )
        # Off the event loop: an encode takes tens of ms of CPU.
        screening: Screening = (await asyncio.to_thread(settings.guardrail.screen, [text]))[0]
        action = guardrail_action(settings.guardrail.settings.policy, screening)
        if action is None:
            return None
        metrics.guardrail.labels(screening.category, action).inc()
        log.warning(
            "guardrail %s request %s from key %s: %s (%s)",
            action,
            request.request_id,
            who.name,
            screening.category,
            screening.matched,
        )
        if on_abuse is not None:
            version = slot.version
            await asyncio.to_thread(
                on_abuse,
                category=screening.category,
                key_name=who.name,
                action=action,
                version=version,
            )
        if action == "blocked":
            return JSONResponse(blocked_error(screening), status_code=400)
        request.flagged = screening.category
        return None

    def admit(who: Caller, request: GenerationRequest) -> int:
        """Count the request against its key's limits (429 past them); the tokens reserved."""
        text = request.prompt if isinstance(request.prompt, str) else json.dumps(request.prompt)
        messages = 1 if isinstance(request.prompt, str) else len(request.prompt)
        bound = token_bound(text, messages, request.max_tokens)
        try:
            reserved = quotas.admit(who.name, who.requests_per_minute, who.tokens_per_day, bound)
        except QuotaExceededError as error:
            metrics.key_requests.labels(who.name, "over_quota").inc()
            raise HTTPException(
                429, str(error), headers={"Retry-After": str(error.retry_after_s)}
            ) from error
        return reserved

    @app.middleware("http")
    async def limit_body(request: Request, call_next: Callable[..., Any]) -> Response:
        declared = request.headers.get("content-length")
        if declared is not None and not declared.isdigit():
            return _error(400, "Content-Length must be a number of bytes", "invalid_request_error")
        # Without a declared length (chunked upload) the body is read once and measured.
        size = int(declared) if declared is not None else len(await request.body())
        if size > settings.max_body_bytes:
            return _error(413, f"request body over {settings.max_body_bytes} bytes", "too_large")
        return await call_next(request)

    @app.middleware("http")  # added last, so it wraps the body limit and sees its 413s too
    async def count_requests(request: Request, call_next: Callable[..., Any]) -> Response:
        response = await call_next(request)
        metrics.requests.labels(_endpoint(app, request), str(response.status_code)).inc()
        return response

    @app.exception_handler(HTTPException)
    async def http_error(_: Request, error: HTTPException) -> JSONResponse:
        kinds = {
            401: "authentication_error",
            403: "permission_error",
            404: "not_found",
            413: "too_large",
            429: "rate_limit_error",
            500: "server_error",
        }
        return _error(
            error.status_code,
            str(error.detail),
            kinds.get(error.status_code, "invalid_request_error"),
            error.headers,
        )

    @app.exception_handler(RequestValidationError)
    async def invalid(_: Request, error: RequestValidationError) -> JSONResponse:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc'][1:])}: {e['msg']}" for e in error.errors()
        )
        return _error(422, problems, "invalid_request_error")

    def budget(requested: int | None) -> int:
        max_tokens = requested or settings.default_max_tokens
        if max_tokens > settings.max_tokens_limit:
            raise HTTPException(
                422,
                f"max_tokens={max_tokens} is over this server's limit {settings.max_tokens_limit}",
            )
        return max_tokens

    async def answer(request: GenerationRequest, who: Caller) -> GenerationResult:
        started = time.perf_counter()
        reserved = admit(who, request)
        used = 0
        try:
            result = await batcher.submit(request)
            used = result.prompt_tokens + result.completion_tokens
        except PromptRejectedError as error:
            raise HTTPException(error.status, str(error)) from error
        except Exception as error:
            metrics.errors.labels(request.endpoint).inc()
            metrics.variant_requests.labels(request.variant, "error", "false").inc()
            log.exception("request %s failed", request.request_id)
            raise HTTPException(500, f"generation failed (request {request.request_id})") from error
        finally:
            quotas.settle(who.name, reserved, used)
        metrics.latency.labels(request.endpoint).observe(time.perf_counter() - started)
        metrics.tokens.labels("prompt").inc(result.prompt_tokens)
        metrics.tokens.labels("completion").inc(result.completion_tokens)
        for kind, count in (
            ("prompt", result.prompt_tokens),
            ("completion", result.completion_tokens),
        ):
            metrics.key_tokens.labels(who.name, result.model_version, kind).inc(count)
        metrics.key_requests.labels(who.name, "answered").inc()
        count_variant(result, shadow=False)
        # Operators see ids, sizes and timing; the prompt only when they opted in, and redacted
        # like the inference log, since a log file is text at rest too.
        prompt = f" prompt={redact_text(request.prompt)!r}" if settings.log_prompts else ""
        log.info(
            "served %s v%s prompt_tokens=%d completion_tokens=%d latency_ms=%.0f%s",
            result.request_id,
            result.model_version,
            result.prompt_tokens,
            result.completion_tokens,
            result.latency_ms,
            prompt,
        )
        return result

    def count_variant(result: GenerationResult, shadow: bool) -> None:
        label = str(shadow).lower()
        metrics.variant_requests.labels(result.variant, "answered", label).inc()
        metrics.variant_latency.labels(result.variant, label).observe(result.latency_ms / 1000)
        metrics.variant_tokens.labels(result.variant, "prompt").inc(result.prompt_tokens)
        metrics.variant_tokens.labels(result.variant, "completion").inc(result.completion_tokens)

    shadow_tasks: set[asyncio.Task] = set()  # held, or the event loop may drop them mid-flight

    def replay_to_challenger(request: GenerationRequest) -> None:
        """In a shadow release, answer a copy of the request with the challenger, off the hot
        path: the batcher serves copies only when no live request waits; the answer is logged
        (variant challenger, shadow) and never returned."""
        if not slot.shadowing:
            return
        if len(shadow_tasks) >= 4 * settings.max_batch:
            # Copies use idle capacity only; under sustained load they would pile up without end.
            metrics.variant_requests.labels(CHALLENGER, "dropped", "true").inc()
            return
        copy = GenerationRequest(
            request.prompt,
            request.max_tokens,
            request.temperature,
            request.endpoint,
            key_name=request.key_name,
            variant=CHALLENGER,
            shadow=True,
            request_id=f"{request.request_id}-shadow",
        )

        async def answer_copy() -> None:
            try:
                count_variant(await batcher.submit(copy), shadow=True)
            except Exception:  # the user never waits on it; the log and metrics show failures
                metrics.variant_requests.labels(CHALLENGER, "error", "true").inc()
                log.exception("shadow copy %s failed", copy.request_id)

        task = asyncio.create_task(answer_copy())
        shadow_tasks.add(task)
        task.add_done_callback(shadow_tasks.discard)

    def usage(result: GenerationResult) -> dict[str, int]:
        return {
            "prompt_tokens": result.prompt_tokens,
            "completion_tokens": result.completion_tokens,
            "total_tokens": result.prompt_tokens + result.completion_tokens,
        }

    def finish_reason(result: GenerationResult, max_tokens: int) -> str:
        return "length" if result.completion_tokens >= max_tokens else "stop"

    async def answer_streamed(
        request: GenerationRequest,
        who: Caller,
        max_tokens: int,
        stream_options: dict[str, Any] | None,
        kind: str,
        choice: Callable[[str | None, str | None], dict[str, Any]],
        opening: dict[str, Any] | None,
    ) -> StreamingResponse:
        """Queue the request and answer with server-sent `kind` events as its pieces come out.

        `choice(piece, finish_reason)` shapes an event's choice; an `opening` choice goes first
        when given. The response starts only once the first piece (or the end) is there, so
        failures before any text (prompt too long, generate failed) still get their HTTP status.
        """
        head = {
            "id": request.request_id,
            "object": kind,
            "created": int(time.time()),
            "model": slot.model_name,
        }

        def chunk(piece: str | None, reason: str | None) -> dict[str, Any]:
            return {**head, "choices": [choice(piece, reason)]}

        loop = asyncio.get_running_loop()
        pieces: asyncio.Queue[str | None] = asyncio.Queue()
        request.on_text = lambda piece: loop.call_soon_threadsafe(pieces.put_nowait, piece)
        outcome = asyncio.ensure_future(answer(request, who))
        # The generation thread queues every piece before its batch returns, and the outcome
        # settles only after that return, so this end marker always comes after the last piece.
        outcome.add_done_callback(lambda _: pieces.put_nowait(None))
        first = await pieces.get()
        metrics.first_token.labels(request.endpoint).observe(time.perf_counter() - request.received)
        if first is None:
            await outcome  # raises the request's HTTP error, if it failed

        async def events() -> AsyncIterator[str]:
            if opening is not None:
                yield _sse({**head, "choices": [opening]})
            piece = first
            while piece is not None:
                yield _sse(chunk(piece, None))
                piece = await pieces.get()
            try:
                result = await outcome
            except HTTPException as error:  # the status line is gone: say it in the stream
                error_body = {
                    "message": error.detail,
                    "type": "server_error",
                    "code": error.status_code,
                }
                yield _sse({"error": error_body})
                return
            # The version is known for sure only now: a hot swap may land between batches.
            yield _sse(
                {
                    **chunk(None, finish_reason(result, max_tokens)),
                    "system_fingerprint": f"v{result.model_version}",
                }
            )
            if (stream_options or {}).get("include_usage"):
                yield _sse({**head, "choices": [], "usage": usage(result)})
            yield "data: [DONE]\n\n"

        return StreamingResponse(
            events(),
            media_type="text/event-stream",
            # Routed before generation; a release ending meanwhile falls back to the champion,
            # which the closing chunk's system_fingerprint (the version) then shows.
            headers={"X-Request-Id": request.request_id, "X-LLMOps-Variant": request.variant},
        )

    @app.get("/health")
    async def health() -> dict[str, Any]:
        release = slot.release if slot.challenger is not None else None
        challenger = (
            {"version": release.version, "mode": release.mode, "share": release.share}
            if release
            else None
        )
        return {
            "status": "ok",
            "model": slot.model_name,
            "version": slot.version,
            "challenger": challenger,
        }

    @app.get("/metrics")
    async def prometheus() -> Response:
        metrics.version.clear()
        metrics.version.labels(slot.model_name, slot.version).set(1)
        return Response(generate_latest(metrics.registry), media_type=CONTENT_TYPE_LATEST)

    @app.get("/v1/models")
    async def models(_: Annotated[Caller, Depends(caller)]) -> dict[str, Any]:
        # Checked on the generation thread, so the answer is the version the next batch uses.
        await batcher.call(slot.refresh)
        return {
            "object": "list",
            "data": [
                {
                    "id": slot.model_name,
                    "object": "model",
                    "created": 0,
                    "owned_by": "llmops",
                    "version": slot.version,
                    "alias": slot.alias,
                }
            ],
        }

    @app.post("/v1/chat/completions")
    async def chat(
        body: ChatCompletionRequest,
        who: Annotated[Caller, Depends(caller)],
        response: Response,
        x_llmops_user: Annotated[str | None, Header()] = None,
    ) -> Any:
        max_tokens = budget(body.max_completion_tokens or body.max_tokens)
        request = GenerationRequest(
            [m.model_dump() for m in body.messages],
            max_tokens,
            body.temperature,
            "chat",
            key_name=who.name,
        )
        if refusal := await screen(request, who):
            return refusal
        request.variant = slot.route(body.user or x_llmops_user or request.request_id)
        replay_to_challenger(request)
        if body.stream:
            opening = {
                "index": 0,
                "delta": {"role": "assistant", "content": ""},
                "finish_reason": None,
            }
            return await answer_streamed(
                request,
                who,
                max_tokens,
                body.stream_options,
                "chat.completion.chunk",
                _chat_choice,
                opening,
            )
        result = await answer(request, who)
        response.headers["X-LLMOps-Variant"] = result.variant
        return {
            "id": result.request_id,
            "object": "chat.completion",
            "created": int(time.time()),
            "model": slot.model_name,
            "system_fingerprint": f"v{result.model_version}",
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": result.text},
                    "finish_reason": finish_reason(result, max_tokens),
                }
            ],
            "usage": usage(result),
        }

    @app.post("/v1/completions")
    async def completions(
        body: CompletionRequest,
        who: Annotated[Caller, Depends(caller)],
        response: Response,
        x_llmops_user: Annotated[str | None, Header()] = None,
    ) -> Any:
        prompts = [body.prompt] if isinstance(body.prompt, str) else body.prompt
        if len(prompts) != 1:
            raise HTTPException(422, "prompt: send exactly one prompt per request")
        max_tokens = budget(body.max_tokens)
        request = GenerationRequest(
            prompts[0], max_tokens, body.temperature, "completions", key_name=who.name
        )
        if refusal := await screen(request, who):
            return refusal
        request.variant = slot.route(body.user or x_llmops_user or request.request_id)
        replay_to_challenger(request)
        if body.stream:
            return await answer_streamed(
                request, who, max_tokens, body.stream_options, "text_completion", _text_choice, None
            )
        result = await answer(request, who)
        response.headers["X-LLMOps-Variant"] = result.variant
        return {
            "id": result.request_id,
            "object": "text_completion",
            "created": int(time.time()),
            "model": slot.model_name,
            "system_fingerprint": f"v{result.model_version}",
            "choices": [
                {
                    "index": 0,
                    "text": result.text,
                    "logprobs": None,
                    "finish_reason": finish_reason(result, max_tokens),
                }
            ],
            "usage": usage(result),
        }

    @app.post("/v1/feedback")
    async def feedback(
        body: FeedbackRequest, _: Annotated[Caller, Depends(caller)]
    ) -> dict[str, Any]:
        logged = await asyncio.to_thread(store.find_request, body.request_id)
        if logged is None:
            raise HTTPException(404, f"no logged request with id {body.request_id!r}")
        score = (
            body.score
            if body.score is not None
            else {"up": 1.0, "down": 0.0}.get(body.rating or "")
        )
        row = {
            "timestamp": utc_now(),
            "request_id": body.request_id,
            "model_version": logged["model_version"],
            "rating": body.rating,
            "score": score,
            "correction": body.corrected_answer,
        }
        stored = await asyncio.to_thread(store.append_feedback, row)
        variant = logged.get("variant")
        sentiment = "positive" if (score if score is not None else 1.0) >= 0.5 else "negative"
        metrics.variant_feedback.labels(
            variant if isinstance(variant, str) else "champion", sentiment
        ).inc()
        if on_feedback is not None:
            await asyncio.to_thread(on_feedback, stored)
        return {"object": "feedback", "stored": True, **stored}

    async def audited(who: Caller, action: str, reason: str) -> None:
        await asyncio.to_thread(
            audit.record, action, reason, slot.model_name, None, f"key:{who.name}"
        )

    @app.post("/v1/admin/reload")
    async def admin_reload(who: Annotated[Caller, Depends(caller)]) -> dict[str, Any]:
        """Check the alias now, and re-read the keys, instead of waiting for the next refresh."""
        before = slot.version
        await batcher.call(slot.refresh)
        await asyncio.to_thread(keyring.reload)
        await audited(who, "admin.reload", f"served version v{before} -> v{slot.version}")
        return {"object": "reload", "model": slot.model_name, "version": slot.version}

    @app.get("/v1/admin/keys")
    async def admin_keys(who: Annotated[Caller, Depends(caller)]) -> dict[str, Any]:
        """The keys this server accepts: names, roles, limits and state, never the keys."""
        await audited(who, "admin.keys.list", "listed the API keys")
        now = datetime.now(UTC)
        rows = [
            {
                "name": k.name,
                "role": k.role,
                "hint": k.hint,
                "state": k.refusal(now) or "active",
                "requests_per_minute": k.requests_per_minute,
                "tokens_per_day": k.tokens_per_day,
            }
            for k in keyring.by_hash.values()
        ]
        return {"object": "list", "data": rows}

    return app


def _endpoint(app: FastAPI, request: Request) -> str:
    """The name of the route a request is for (chat, completions, feedback, ...): a bounded
    metric label even for requests refused before routing or sent to made-up paths."""
    for route in app.router.routes:
        match, _ = route.matches(request.scope)
        if match != Match.NONE:
            return route.name
    return "unknown"


def _chat_choice(piece: str | None, reason: str | None) -> dict[str, Any]:
    """A chat.completion.chunk choice: a content delta, or the closing empty one."""
    delta = {} if piece is None else {"content": piece}
    return {"index": 0, "delta": delta, "finish_reason": reason}


def _text_choice(piece: str | None, reason: str | None) -> dict[str, Any]:
    """A streamed text_completion choice: a text piece, or the closing empty one."""
    return {"index": 0, "text": piece or "", "logprobs": None, "finish_reason": reason}


def _sse(body: dict[str, Any]) -> str:
    """One server-sent event carrying a JSON body."""
    return f"data: {json.dumps(body)}\n\n"
