"""Put the previous champion back.

llmops rollback [--registered-model NAME]
"""

from typing import Any, ClassVar

from prefect import flow
from pydantic import Field

from llmops.config import FlowConfig
from tasks.registry import publish_rollback, rollback_champion


class RollbackConfig(FlowConfig):
    """Which registered model to roll back."""

    profile_dir: ClassVar[str] = "rollback"

    registered_model: str = Field(
        "llmops-assistant", min_length=1, description="MLflow registered model name."
    )


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
