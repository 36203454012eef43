"""Put the previous champion back.

llmops rollback [--registered-model NAME]
"""

from typing import Any

from prefect import flow

from llmops.flow_configs import RollbackConfig
from tasks.registry import publish_rollback, rollback_champion


@flow(name="rollback", log_prints=True)
def rollback(config: RollbackConfig) -> dict[str, Any]:
    """Move `champion` to `previous-champion` and record it."""
    rolled_back, restored = rollback_champion(config.registered_model)
    print(publish_rollback(config.registered_model, rolled_back, restored))
    return {
        "registered_model": config.registered_model,
        "rolled_back": rolled_back,
        "champion": restored,
    }
