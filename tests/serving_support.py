"""Tiny models that say something, shared by the generation and serving tests.

The tiny random base only ever emits newlines (an empty answer after stripping); a perturbed
LoRA adapter merged into it gives non-empty, prompt-dependent text, so streamed pieces and
answers can be compared for real.
"""

import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx
import pytest
import torch
from model_support import make_tiny_adapter
from net_support import free_port
from peft import PeftModel
from stack_support import wait_for
from transformers import PreTrainedModel, PreTrainedTokenizerBase

from llmops.model.loading import load_model, load_tokenizer

if TYPE_CHECKING:
    from llmops.serving.app import ServerSettings

# The installed `llmops` executable, run as a user runs it.
LLMOPS = Path(sys.executable).parent / "llmops"
# An adapter seed whose merged model answers different prompts differently (checked: most
# seeds do; a few collapse to one repeated word for every prompt).
TALKING_SEED = 4


def talking_tiny_model(workdir: Path) -> tuple[PreTrainedModel, PreTrainedTokenizerBase]:
    """The tiny random model with a seeded random adapter merged in, on CPU, in eval mode."""
    adapter, base = make_tiny_adapter(workdir / "talking-adapter", seed=TALKING_SEED, scale=1.0)
    model = PeftModel.from_pretrained(load_model(base, torch.device("cpu")), str(adapter))
    return model.merge_and_unload().eval(), load_tokenizer(base)


def register_talking_champion(model_name: str, workdir: Path, seed: int, scale: float) -> str:
    """Register a perturbed tiny adapter in the current MLflow registry and make it `champion`;
    returns its version."""
    from llmops.model.registry import register_adapter, set_alias

    adapter, base = make_tiny_adapter(workdir / f"adapter-{seed}", seed=seed, scale=scale)
    version = register_adapter(
        model_name, str(adapter), base.ref, base.sha256, None, {"seed": str(seed)}
    )
    set_alias(model_name, "champion", version)
    return version


def home_with_talking_champion(home: Path, model_name: str) -> Path:
    """`home` with a registry of its own (MLflow on SQLite in it) whose champion answers; the
    caller's environment is left as it was."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("LLMOPS_HOME", str(home))
        mp.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{home / 'mlflow.db'}")
        register_talking_champion(model_name, home, seed=TALKING_SEED, scale=1.0)
    return home


def wait_for_event(name: str, key: str, value: str) -> Any:
    """The event carrying payload[key] == value; events reach the server asynchronously."""
    from prefect.client.orchestration import get_client
    from prefect.events.filters import EventFilter, EventNameFilter

    deadline = time.monotonic() + 30
    with get_client(sync_client=True) as client:
        while time.monotonic() < deadline:
            page = client.read_events(EventFilter(event=EventNameFilter(name=[name])), limit=50)
            found = [e for e in page.events if e.payload.get(key) == value]
            if found:
                return found[0]
            time.sleep(0.5)
    raise AssertionError(f"no {name} event with {key}={value}")


def serve_environment(home: Path) -> dict[str, str]:
    """A `llmops serve` process's environment: this home's registry, the test harness's Prefect
    server (so the test reads the events it emits), no single API key."""
    from prefect.settings import PREFECT_API_URL

    env = {k: v for k, v in os.environ.items() if k != "LLMOPS_API_KEY"}
    return env | {
        "PREFECT_API_URL": PREFECT_API_URL.value(),
        "LLMOPS_HOME": str(home),
        "MLFLOW_TRACKING_URI": f"sqlite:///{home / 'mlflow.db'}",
    }


@contextmanager
def running_serve(home: Path, env: dict[str, str], *args: str) -> Iterator[str]:
    """`llmops serve --profile tiny` (the installed executable) on a free port with `args`,
    logging to <home>/server.log, until the block ends; yields its base URL once it answers."""
    port = free_port()
    command = [str(LLMOPS), "serve", "--profile", "tiny"]
    with (home / "server.log").open("w") as log:
        process = subprocess.Popen(
            [*command, "--port", str(port), *args], env=env, stdout=log, stderr=subprocess.STDOUT
        )
        base_url = f"http://127.0.0.1:{port}"
        try:
            log_path = home / "server.log"
            wait_for("llmops serve", lambda: serve_answers(base_url, process, log_path), 180, 0.5)
            yield base_url
        finally:
            process.terminate()
            process.wait(timeout=60)


def small_server_settings(api_key: str, **extra: Any) -> "ServerSettings":
    """Serving settings with small limits, so generation stays cheap."""
    from pydantic import SecretStr

    from llmops.serving.app import ServerSettings

    return ServerSettings(
        api_key=SecretStr(api_key),
        max_body_bytes=8192,
        max_tokens_limit=8,
        default_max_tokens=4,
        max_prompt_tokens=256,
        max_batch=8,
        batch_window_ms=1,
        **extra,
    )


@contextmanager
def serving_in_process(model_name: str, inference_log: Path, api_key: str) -> Iterator[str]:
    """The app `llmops serve` runs, serving the registry's champion of `model_name`, on a free
    loopback port in a thread of this process: a server in seconds where starting the CLI takes
    most of a minute on 2 cores. Yields its base URL."""
    import uvicorn

    from llmops.serving.app import create_app
    from llmops.serving.champion import ModelSlot
    from llmops.serving.store import InferenceStore

    slot = ModelSlot(model_name, "champion", refresh_seconds=3600)
    app = create_app(small_server_settings(api_key), slot, InferenceStore(str(inference_log)))
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        wait_for("the in-process server", lambda: server.started, 60, 0.1)
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=30)


def serve_answers(base_url: str, process: subprocess.Popen, log: Path) -> bool:
    """Whether `llmops serve` answers its health check yet; its log's tail if it exited."""
    if process.poll() is not None:
        raise AssertionError(f"llmops serve exited:\n{log.read_text()[-3000:]}")
    try:
        return httpx.get(f"{base_url}/health", timeout=1).status_code == 200
    except httpx.TransportError:
        return False
