"""MLflow at the edge: one place that points MLflow at the project's store."""

import mlflow
from mlflow.tracking import MlflowClient

from llmops.home import home_path, mlflow_tracking_uri


def mlflow_client() -> MlflowClient:
    """Point mlflow at the project's tracking/registry store and return a client for it."""
    uri = mlflow_tracking_uri()
    mlflow.set_tracking_uri(uri)
    mlflow.set_registry_uri(uri)
    return MlflowClient(tracking_uri=uri, registry_uri=uri)


def ensure_experiment(name: str) -> str:
    """Return the id of experiment `name`, creating it with artifacts in the project home.

    An explicit artifact location matters: without it MLflow writes ./mlruns relative to
    whatever directory the process happened to start in.
    """
    client = mlflow_client()
    experiment = client.get_experiment_by_name(name)
    if experiment is not None:
        return experiment.experiment_id
    artifacts = home_path("mlartifacts", name)
    return client.create_experiment(name, artifact_location=artifacts.as_uri())
