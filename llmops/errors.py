"""Which errors mean "your input is wrong": the CLI prints them as one line instead of a
traceback, and tasks never retry them (retrying cannot fix bad input)."""

from llmops.data.errors import DataContractError, SourceUnreadableError
from llmops.model.cost import BudgetExceededError
from llmops.model.judge import JudgeError

USER_ERRORS = (
    FileNotFoundError,
    ValueError,
    LookupError,
    SourceUnreadableError,
    DataContractError,
    BudgetExceededError,  # the run would cost more than its profile allows: fix the budget
    JudgeError,  # the configured judge endpoint did not answer (after the SDK's retries)
)
