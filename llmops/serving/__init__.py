"""Serving the champion: OpenAI-compatible API, dynamic batching, inference log, feedback."""
