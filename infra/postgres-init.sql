-- The MLflow server's database beside Prefect's (infra/docker-compose.yml).
CREATE DATABASE mlflow;
