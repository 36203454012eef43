"""The `llmops` command: the one front door. Each subcommand runs a real Prefect flow.

llmops --help
"""

from llmops.home import configure_environment

# Prefect reads its settings when imported, so the local defaults must be in place first.
configure_environment()

import typer  # noqa: E402

from llmops.commands import (  # noqa: E402
    authoring,
    data,
    governance,
    model,
    ops,
    release,
    serving,
    stack,
    training,
)

app = typer.Typer(
    name="llmops",
    help="Run the LLM lifecycle as Prefect flows: prepare data, fine-tune, evaluate, promote, "
    "serve, monitor and retrain. Everything runs locally by default (ephemeral Prefect, MLflow "
    "on SQLite in the project home, $LLMOPS_HOME or ./.llmops).",
    no_args_is_help=True,
    pretty_exceptions_show_locals=False,
)
for area in (data, training, model, release, serving, governance, ops, stack, authoring):
    area.register(app)


def main() -> None:
    """The `llmops` executable: the app, with its child processes stopped however it ends."""
    from llmops.processes import stop_children_on_exit

    stop_children_on_exit()
    app()


if __name__ == "__main__":
    main()
