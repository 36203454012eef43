"""Serve the registry's champion over an OpenAI-compatible REST API until stopped.

    LLMOPS_API_KEY=... llmops serve --profile cpu --port 8000

Loads base model + adapter behind the alias, swaps to a new version when the alias moves, logs
every request to the inference log and takes human feedback at /v1/feedback.
"""

import logging
import os
from functools import partial
from typing import ClassVar

import uvicorn
from prefect import flow, task
from prefect.artifacts import create_markdown_artifact
from prefect.blocks.system import Secret
from prefect.cache_policies import NO_CACHE
from pydantic import Field, model_validator

from llmops.config import FlowConfig
from llmops.serving.app import ServerSettings, create_app
from llmops.serving.champion import ModelSlot
from llmops.serving.store import InferenceStore
from tasks.feedback import default_inference_log, emit_feedback_event


class ServeConfig(FlowConfig):
    """Where to listen, which model to serve, and the limits every request must respect."""

    profile_dir: ClassVar[str] = "serve"

    registered_model: str = Field("llmops-assistant", description="MLflow registered model.")
    alias: str = Field("champion", description="Registry alias whose version is served.")
    host: str = Field("127.0.0.1", description="Interface to bind (0.0.0.0 to expose).")
    port: int = Field(8000, ge=1, le=65535, description="TCP port.")
    require_api_key: bool = Field(True, description="Reject requests without the API key.")
    api_key_env: str = Field("LLMOPS_API_KEY", description="Environment variable with the key.")
    api_key_secret_block: str | None = Field(
        None, description="Prefect Secret block holding the key (wins over the environment)."
    )
    inference_log: str = Field(
        "", description="Folder or s3:// prefix of the inference log ('' = <home>/inference)."
    )
    max_body_bytes: int = Field(65_536, ge=1024, le=16_777_216, description="Request size cap.")
    max_tokens_limit: int = Field(512, ge=1, le=8192, description="Largest max_tokens accepted.")
    default_max_tokens: int = Field(128, ge=1, le=8192, description="max_tokens when not sent.")
    max_prompt_tokens: int = Field(1024, ge=16, le=32_768, description="Longest prompt accepted.")
    max_batch: int = Field(16, ge=1, le=256, description="Most requests per generate call.")
    batch_window_ms: float = Field(
        10.0,
        ge=0.0,
        le=1000.0,
        description="How long a batch waits to fill after its first request.",
    )
    refresh_seconds: float = Field(
        5.0, ge=0.0, le=3600.0, description="How often the alias is checked for a new version."
    )
    log_prompts: bool = Field(False, description="Write full prompts to the server log.")

    @model_validator(mode="after")
    def _default_within_limit(self) -> "ServeConfig":
        if self.default_max_tokens > self.max_tokens_limit:
            raise ValueError("default_max_tokens must not exceed max_tokens_limit")
        return self


@task(cache_policy=NO_CACHE)
def load_api_key(require: bool, env_var: str, secret_block: str | None) -> str | None:
    """The API key from the Secret block or the environment; None when keys are switched off."""
    if not require:
        return None
    key = Secret.load(secret_block).get() if secret_block else os.environ.get(env_var)
    if not key:
        where = f"Prefect Secret block {secret_block!r}" if secret_block else f"${env_var}"
        raise ValueError(f"no API key in {where}; set it, or set require_api_key: false")
    return key


@task(cache_policy=NO_CACHE)
def load_served_model(registered_model: str, alias: str, refresh_seconds: float) -> ModelSlot:
    """Load the version behind the alias into a hot-swappable slot."""
    return ModelSlot(registered_model, alias, refresh_seconds)


@task(cache_policy=NO_CACHE)
def publish_endpoint(config: ServeConfig, slot: ModelSlot, inference_log: str) -> None:
    """A markdown artifact saying what is served where (no secrets in it)."""
    create_markdown_artifact(
        f"## Serving `{slot.model_name}` version {slot.version} (alias `{slot.alias}`)\n\n"
        f"- OpenAI base URL: `http://{config.host}:{config.port}/v1`\n"
        f"- API key required: {config.require_api_key}\n"
        f"- Inference log: `{inference_log}`\n"
        f"- Batching: up to {config.max_batch} requests, {config.batch_window_ms} ms window\n",
        key="serving-endpoint",
        description="The model version this server answers with",
    )


@task(cache_policy=NO_CACHE)
def run_server(
    config: ServeConfig, slot: ModelSlot, api_key: str | None, inference_log: str
) -> None:
    """Run uvicorn with the app until the process is told to stop."""
    settings = ServerSettings(
        api_key=api_key,
        max_body_bytes=config.max_body_bytes,
        max_tokens_limit=config.max_tokens_limit,
        default_max_tokens=config.default_max_tokens,
        max_prompt_tokens=config.max_prompt_tokens,
        max_batch=config.max_batch,
        batch_window_ms=config.batch_window_ms,
        log_prompts=config.log_prompts,
    )
    on_feedback = partial(emit_feedback_event, model_name=slot.model_name)
    app = create_app(settings, slot, InferenceStore(inference_log), on_feedback)
    logging.getLogger("llmops.serving").setLevel(logging.INFO)
    # access_log off: uvicorn's access lines are ours already, with ids instead of client IPs.
    uvicorn.run(app, host=config.host, port=config.port, access_log=False, log_level="info")


@flow(name="serve", log_prints=True)
def serve(config: ServeConfig) -> None:
    """Load the champion and answer requests until stopped."""
    api_key = load_api_key(config.require_api_key, config.api_key_env, config.api_key_secret_block)
    inference_log = config.inference_log or default_inference_log()
    slot = load_served_model(config.registered_model, config.alias, config.refresh_seconds)
    publish_endpoint(config, slot, inference_log)
    run_server(config, slot, api_key, inference_log)
