"""The one internal record form every input schema is normalized to.

A record is a row with:
    record_id  the source's own `id` when it has one, else its location ("file:line")
    source     where it came from, "file:line" (line 1-based; row number for Parquet/CSV/JSON)
    messages   the conversation as [{"role": "system"|"user"|"assistant", "content": str}, ...],
               ending with the assistant turn that is trained on and evaluated against.
An instruction record (`prompt`/`response`, optional `system`) becomes system?, user, assistant.

Two optional columns, written only when the data has them:
    rejected   a preference pair's rejected answer: `messages` ends with the chosen answer and
               `rejected` answers the same prompt turns worse (None on a supervised record).
    metadata   the source row's other scalar top-level fields as strings (topic, language, ...),
               which a data contract may name as evaluation slices.
"""

from typing import Literal, TypedDict

Role = Literal["system", "user", "assistant"]
RECORD_COLUMNS = ("record_id", "source", "messages")
OPTIONAL_COLUMNS = ("rejected", "metadata")
# Raw fields that make up a record rather than describe it: never copied into `metadata`.
RECORD_FIELDS = frozenset({"id", "messages", "prompt", "response", "system", "chosen", "rejected"})


class Message(TypedDict):
    role: Role
    content: str


def prompt_messages(messages: list[Message]) -> list[Message]:
    """The conversation up to (not including) the final assistant turn: what a model is asked."""
    return list(messages[:-1])


def reference_response(messages: list[Message]) -> str:
    """The final assistant turn: the reference answer."""
    return messages[-1]["content"]


def with_answer(prompt: list[Message], answer: str) -> list[Message]:
    """The prompt turns followed by `answer` as the final assistant turn."""
    return [*prompt, {"role": "assistant", "content": answer}]


def prompt_text(prompt: list[Message]) -> str:
    """What a prompt is compared and shown on: its user and assistant turns (the system message
    is house instructions shared by many records, not the question)."""
    return "\n".join(m["content"] for m in prompt if m["role"] != "system")


def instruction_to_messages(prompt: str, response: str, system: str | None = None) -> list[Message]:
    """Normalize the instruction schema to messages."""
    head: list[Message] = [{"role": "system", "content": system}] if system else []
    return [*head, {"role": "user", "content": prompt}, {"role": "assistant", "content": response}]
