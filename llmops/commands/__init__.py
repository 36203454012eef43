"""Subcommands of the `llmops` CLI, one module per area; each exposes `register(app)`."""

from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from typing import Annotated, Any

import typer
from pydantic import ValidationError
from pydantic_core import ErrorDetails

from llmops.errors import USER_ERRORS

Profile = Annotated[str, typer.Option(help="Settings profile: tiny, cpu or gpu.")]


@contextmanager
def one_line_errors() -> Iterator[None]:
    """Bad input inside the block becomes a one-line error (its first line; for an invalid
    config, what is wrong with it) and exit code 1."""
    try:
        yield
    except ValidationError as error:
        problems = "; ".join(_problem(e) for e in error.errors())
        typer.echo(f"error: invalid {error.title}: {problems}", err=True)
        raise typer.Exit(1) from error
    except USER_ERRORS as error:
        message = str(error).splitlines()[0] if str(error) else type(error).__name__
        typer.echo(f"error: {message}", err=True)
        raise typer.Exit(1) from error


def _problem(error: ErrorDetails) -> str:
    """One validation problem: where (a field, or the config itself) and what."""
    where = ".".join(str(part) for part in error["loc"])
    return f"{where}: {error['msg']}" if where else error["msg"]


def run_flow(flow_fn: Any, config: Any) -> Any:
    """Run a flow in-process; bad input becomes a one-line error and exit code 1."""
    with one_line_errors():
        return flow_fn(config)


def start_flow_server() -> Callable[[], None]:
    """Start Prefect's temporary server in the background when no server is configured, and
    return the wait for it (which re-raises its failure). Its start, a subprocess that imports
    and migrates Prefect's API (seconds), then overlaps this process's imports of the flow
    about to run; the flow finds it running (Prefect keeps one temporary server per process)
    instead of starting it and waiting."""
    from prefect.settings import get_current_settings

    if get_current_settings().api.url:
        return lambda: None
    from prefect.server.api.server import SubprocessASGIServer

    pool = ThreadPoolExecutor(max_workers=1)
    started = pool.submit(SubprocessASGIServer().start)
    pool.shutdown(wait=False)  # the start goes on; the pool takes nothing more
    return started.result
