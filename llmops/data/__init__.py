"""The data half: ingest, contract validation, PII redaction, deduplication, split, versioning."""
