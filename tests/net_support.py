"""Loopback helpers shared by tests that start servers (S3, Prefect, MLflow, llmops serve)."""

import socket


def free_port() -> int:
    """A port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]
