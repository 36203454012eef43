"""Prefect flows, one per file; each flow is named like its file and takes one config."""
