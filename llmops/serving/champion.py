"""The model being served and its hot swap when the registry alias moves.

The slot is only touched from the single generation thread (see batching.py), so a swap always
happens between two batches: a batch in flight finishes on the model it started with.
"""

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from peft import PeftModel
from transformers import PreTrainedModel, PreTrainedTokenizerBase

from llmops.model.generation import TextSink, generate_texts
from llmops.model.loading import load_model, load_tokenizer, resolve_base
from llmops.model.registry import alias_version, resolve_alias

log = logging.getLogger(__name__)


class NoChampionError(RuntimeError):
    """The registry has no version behind the alias yet."""


@dataclass(frozen=True)
class LoadedModel:
    """A ready-to-generate model and where it came from."""

    name: str
    version: str
    base_ref: str
    model: PreTrainedModel
    tokenizer: PreTrainedTokenizerBase


def load_registered_model(model_name: str, alias: str) -> LoadedModel:
    """Load base + LoRA adapter of the version behind `alias`, merged for faster decoding."""
    adapter = resolve_alias(model_name, alias)
    if adapter is None:
        raise NoChampionError(f"registered model {model_name!r} has no {alias!r} alias yet")
    base = resolve_base(adapter.base_ref)
    model = load_model(base)
    # Merging removes the LoRA indirection from every forward pass; the registry keeps the adapter.
    merged = PeftModel.from_pretrained(model, str(adapter.adapter_dir)).merge_and_unload()
    merged.eval()
    return LoadedModel(model_name, adapter.version, adapter.base_ref, merged, load_tokenizer(base))


class ModelSlot:
    """Holds the served model; `refresh` reloads it when the alias points at another version."""

    def __init__(
        self,
        model_name: str,
        alias: str,
        refresh_seconds: float,
        load: Callable[[str, str], LoadedModel] = load_registered_model,
        current_version: Callable[[str, str], str | None] = alias_version,
    ) -> None:
        self.model_name, self.alias, self.refresh_seconds = model_name, alias, refresh_seconds
        self._load, self._current_version = load, current_version
        self.loaded = load(model_name, alias)
        self._checked_at = time.monotonic()

    @property
    def version(self) -> str:
        return self.loaded.version

    def refresh(self, force: bool = False) -> bool:
        """Swap to the alias's version if it moved (checked at most every refresh_seconds)."""
        if not force and time.monotonic() - self._checked_at < self.refresh_seconds:
            return False
        self._checked_at = time.monotonic()
        version = self._current_version(self.model_name, self.alias)
        if version is None or version == self.loaded.version:
            return False
        # Load fully before swapping: a failed load keeps serving the old version.
        self.loaded = self._load(self.model_name, self.alias)
        log.info("hot swap: now serving %s version %s", self.model_name, self.loaded.version)
        return True

    def render_chat(self, messages: Sequence[dict[str, str]]) -> str:
        """The prompt text the chat template makes of a conversation."""
        return self.loaded.tokenizer.apply_chat_template(
            list(messages), add_generation_prompt=True, tokenize=False
        )

    def count_tokens(self, text: str) -> int:
        """Prompt length in tokens, as the model sees it."""
        return len(self.loaded.tokenizer(text, add_special_tokens=False)["input_ids"])

    def generate(
        self,
        prompts: Sequence[str],
        max_new_tokens: int,
        temperature: float,
        streams: Sequence[TextSink | None] | None = None,
    ) -> list[tuple[str, int, int]]:
        """One batched generate call over rendered prompts; `streams` as in generate_texts."""
        loaded = self.loaded
        return generate_texts(
            loaded.model, loaded.tokenizer, prompts, max_new_tokens, temperature, streams
        )
