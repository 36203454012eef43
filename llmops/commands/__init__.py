"""Subcommands of the `llmops` CLI, one module per area; each exposes `register(app)`."""
