"""Serve the registry's champion over an OpenAI-compatible REST API until stopped.

    LLMOPS_API_KEY=... llmops serve --profile cpu --port 8000

Loads base model + adapter behind the alias, swaps to a new version when the alias moves, logs
every request to the inference log (PII redacted) and takes human feedback at /v1/feedback.
"""

import logging
import os
from functools import partial

import uvicorn
from prefect import flow, task
from prefect.artifacts import create_markdown_artifact
from prefect.blocks.system import Secret
from prefect.cache_policies import NO_CACHE
from pydantic import SecretStr

from llmops.flow_configs import ServeConfig
from llmops.governance.keys import KeyStore, key_store
from llmops.serving.app import ServerSettings, create_app
from llmops.serving.champion import ModelSlot
from llmops.serving.guardrails import Guardrail, GuardrailSettings, emit_abuse_event
from llmops.serving.store import InferenceStore
from tasks.feedback import emit_feedback_event


# NO_CACHE and no persisted result: the key must never be written into Prefect's storage.
@task(cache_policy=NO_CACHE, persist_result=False)
def load_api_key(
    require: bool, env_var: str, secret_block: str | None, keys: KeyStore | None
) -> SecretStr | None:
    """The single admin key from the Secret block or the environment (masked in every repr and
    log); None when it is not set but `llmops keys` keys exist, or when keys are switched off."""
    if not require:
        return None
    key = Secret.load(secret_block).get() if secret_block else os.environ.get(env_var)
    if not key and not (keys and keys.load()):
        where = f"Prefect Secret block {secret_block!r}" if secret_block else f"${env_var}"
        raise ValueError(
            f"no API key: set {where}, create keys with `llmops keys create`, "
            "or set require_api_key: false"
        )
    return SecretStr(key) if key else None


@task(cache_policy=NO_CACHE)
def load_served_model(registered_model: str, alias: str, refresh_seconds: float) -> ModelSlot:
    """Load the version behind the alias into a hot-swappable slot."""
    return ModelSlot(registered_model, alias, refresh_seconds)


@task(cache_policy=NO_CACHE)
def load_guardrail(settings: GuardrailSettings) -> Guardrail | None:
    """The prompt screen (reference set embedded once), or None when the policy is off."""
    return None if settings.policy == "off" else Guardrail(settings)


@task(cache_policy=NO_CACHE)
def publish_endpoint(config: ServeConfig, slot: ModelSlot, inference_log: str) -> None:
    """A markdown artifact saying what is served where (no secrets in it)."""
    days = config.raw_text_retention_days
    raw_text = f"raw text kept {days} days under `raw/`" if days else "no raw text kept"
    batching = (
        f"continuous, up to {config.max_batch} requests decoding together"
        if config.batching == "continuous"
        else f"static, up to {config.max_batch} requests, {config.batch_window_ms} ms window"
    )
    create_markdown_artifact(
        f"## Serving `{slot.model_name}` version {slot.version} (alias `{slot.alias}`)\n\n"
        f"- OpenAI base URL: `http://{config.host}:{config.port}/v1`\n"
        f"- API key required: {config.require_api_key}\n"
        f"- Inference log: `{inference_log}` (PII redacted; {raw_text})\n"
        f"- Batching: {batching}\n"
        f"- Guardrails: {config.guardrails.policy} (threshold {config.guardrails.threshold}, "
        f"reference set {config.guardrails.reference_set})\n",
        key="serving-endpoint",
        description="The model version this server answers with",
    )


@task(cache_policy=NO_CACHE)
def run_server(
    config: ServeConfig,
    slot: ModelSlot,
    api_key: SecretStr | None,
    keys: KeyStore | None,
    guardrail: Guardrail | None,
    inference_log: str,
) -> None:
    """Run uvicorn with the app until the process is told to stop."""
    settings = ServerSettings(
        api_key=api_key,
        key_store=keys,
        guardrail=guardrail,
        keys_refresh_seconds=config.keys_refresh_seconds,
        api_key_name=config.api_key_secret_block or config.api_key_env,
        max_body_bytes=config.max_body_bytes,
        max_tokens_limit=config.max_tokens_limit,
        default_max_tokens=config.default_max_tokens,
        max_prompt_tokens=config.max_prompt_tokens,
        batching=config.batching,
        max_batch=config.max_batch,
        batch_window_ms=config.batch_window_ms,
        log_prompts=config.log_prompts,
    )
    on_feedback = partial(emit_feedback_event, model_name=slot.model_name)
    on_abuse = partial(emit_abuse_event, model_name=slot.model_name)
    store = InferenceStore(inference_log, config.raw_text_retention_days)
    app = create_app(settings, slot, store, on_feedback, on_abuse)
    logging.getLogger("llmops.serving").setLevel(logging.INFO)
    # access_log off: uvicorn's access lines are ours already, with ids instead of client IPs.
    uvicorn.run(app, host=config.host, port=config.port, access_log=False, log_level="info")


@flow(name="serve", log_prints=True)
def serve(config: ServeConfig) -> None:
    """Load the champion and answer requests until stopped."""
    keys = key_store(config.keys_secret_block) if config.require_api_key else None
    api_key = load_api_key(
        config.require_api_key, config.api_key_env, config.api_key_secret_block, keys
    )
    inference_log = config.inference_log_url()
    slot = load_served_model(config.registered_model, config.alias, config.refresh_seconds)
    guardrail = load_guardrail(config.guardrails)
    publish_endpoint(config, slot, inference_log)
    run_server(config, slot, api_key, keys, guardrail, inference_log)
