"""The task library: small typed Prefect tasks that flows compose."""
