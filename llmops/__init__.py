"""LLMOps platform: the LLM lifecycle as Prefect flows. Front door: the `llmops` command."""

__version__ = "0.1.0"
