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
    """Return the id of experiment `name`, creating it if needed.

    With a local tracking store, artifacts go to the project home: without an explicit location
    MLflow writes ./mlruns relative to whatever directory the process happened to start in.
    """
    client = mlflow_client()
    experiment = client.get_experiment_by_name(name)
    if experiment is not None:
        return experiment.experiment_id
    if mlflow_tracking_uri().startswith(("http://", "https://")):
        # A tracking server places artifacts itself (proxied: mlflow-artifacts:/ in its store),
        # which is what lets every host reach them with the tracking URL alone.
        return client.create_experiment(name)
    artifacts = home_path("mlartifacts", name)
    return client.create_experiment(name, artifact_location=artifacts.as_uri())
