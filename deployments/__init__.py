"""Deployment rendering: prefect.yaml is generated from the flow profiles."""
