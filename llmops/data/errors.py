"""Errors that stop data preparation; each message is the one-line reason shown to the user."""


class SourceUnreadableError(RuntimeError):
    """The source cannot be read at all (missing, empty, unknown format, no access)."""


class DataContractError(RuntimeError):
    """More records failed the contract than its tolerance allows."""
