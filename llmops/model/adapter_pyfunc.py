"""A LoRA adapter as an MLflow pyfunc model: the registered artifact is the adapter only.

MLflow's transformers flavor drops the weights of a local base model (they come back randomly
initialised), so the adapter is logged as a pyfunc that, when loaded, resolves the base model
from the reference recorded next to it and wraps it with the adapter.

    python -c "import mlflow; m = mlflow.pyfunc.load_model('models:/llmops-assistant@champion');
               print(m.predict(['How do I reset my password?'], params={'max_new_tokens': 32}))"
"""

import json
from pathlib import Path
from typing import Any

import mlflow.pyfunc


class AdapterModel(mlflow.pyfunc.PythonModel):
    """Chat with base model + LoRA adapter; input: a list of user prompts, output: answers."""

    def load_context(self, context: mlflow.pyfunc.PythonModelContext) -> None:
        # Imported here so that logging the model does not need the model stack loaded.
        from peft import PeftModel

        from llmops.model.loading import load_model, load_tokenizer, resolve_base

        recorded = json.loads(Path(context.artifacts["base_ref"]).read_text())
        # Resolved again on the loading host (e.g. the GGUF conversion is redone in its home);
        # a base whose weights differ from the ones trained on is a wrong model, not a warning.
        base = resolve_base(recorded["ref"])
        if recorded.get("sha256") and base.sha256 and base.sha256 != recorded["sha256"]:
            raise ValueError(
                f"base model {recorded['ref']!r} here has sha256 {base.sha256}, but the adapter "
                f"was trained on {recorded['sha256']}"
            )
        self.tokenizer = load_tokenizer(base)
        self.model = PeftModel.from_pretrained(load_model(base), context.artifacts["adapter"])
        self.model.eval()

    def predict(self, context, model_input, params=None):  # noqa: ANN001, ANN201
        # No type hints on purpose: MLflow derives a signature from them and would then drop
        # the `params` (max_new_tokens, temperature) declared in the logged signature.
        from llmops.model.generation import generate_batch

        params: dict[str, Any] = params or {}
        prompts = _as_prompts(model_input)
        answers = generate_batch(
            self.model,
            self.tokenizer,
            [[{"role": "user", "content": p}] for p in prompts],
            max_new_tokens=int(params.get("max_new_tokens", 128)),
            temperature=float(params.get("temperature", 0.0)),
        )
        return [text for text, _, _ in answers]


def _as_prompts(model_input: Any) -> list[str]:
    """MLflow hands a list of strings or a one-column DataFrame; normalise to a list."""
    if hasattr(model_input, "iloc"):
        return [str(v) for v in model_input.iloc[:, 0].tolist()]
    return [str(v) for v in model_input]
