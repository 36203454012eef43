"""Orchestration policy shared by tasks: what is worth retrying.

@task(**STORE_RETRIES)
"""

from typing import Any

from prefect.cache_policies import NO_CACHE
from prefect.client.schemas.objects import TaskRun
from prefect.states import State

from llmops.errors import USER_ERRORS


def retry_transient(task: Any, task_run: TaskRun, state: State) -> bool:
    """Retry a failed store or network call, never bad input: a missing dataset, an invalid
    file or a contract breach fails the same way every time, so retrying only adds delay."""
    try:
        state.result()
    except USER_ERRORS:
        return False
    except Exception:  # noqa: BLE001 - anything else may be a blip of the store or network
        return True
    return True


# Object stores and tracking servers have blips; a retry a few seconds later usually succeeds.
STORE_RETRIES: dict[str, Any] = {
    "retries": 2,
    "retry_delay_seconds": [2, 10],
    "retry_condition_fn": retry_transient,
}


# For tasks whose result names something on this host's disk (a model checkpoint folder, a
# scratch folder, a downloaded adapter) or whose work leaves it there (training). Prefect's
# default policy reuses a task's result within the same flow run, and a flow run that is
# requeued after its worker died runs again on another host, where that disk is not.
HOST_LOCAL = NO_CACHE
