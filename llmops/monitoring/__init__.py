"""Drift monitoring: sentence embeddings and Evidently reports over the inference log."""
