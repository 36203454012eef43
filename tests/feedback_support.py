"""Feedback logs for the export tests. `fill_log` holds the usual mess, shared by the pairs export
and the pairs-prepare tests: several answers to one prompt, a request rated twice, repeated
answers, a correction equal to the answer, a prompt with only up-votes and a raw completion."""

from llmops.serving.store import InferenceStore, utc_now

EXPORT = "How do I export my notes?"
GOOD_EXPORT = "Use Settings > Export and pick Markdown."


def fill_log(store: InferenceStore) -> None:
    """Requests and feedback, in the order people sent them."""
    served = [
        ("a1", EXPORT, GOOD_EXPORT, "chat"),
        ("a2", EXPORT, "Export is not supported.", "chat"),
        ("a3", EXPORT, "You cannot export notes, sorry.", "chat"),
        ("a4", "  how do I EXPORT my notes ", GOOD_EXPORT.upper() + "!", "chat"),  # same again
        ("a5", EXPORT, "Open Settings > Export.", "chat"),  # lukewarm: neither side
        ("b1", "Can I get a refund?", "Yes, within 14 days.", "chat"),
        ("b2", "Can I get a refund?", "Reply with your invoice number.", "chat"),
        ("c1", "How do I reset my password?", "Call us.", "chat"),
        ("c2", "How do I reset my password?", "Use Forgot password on the login page.", "chat"),
        ("d1", "Where are my invoices?", "Under Billing history.", "chat"),
        ("e1", "Complete: the sky is", "green", "completions"),
    ]
    store.append_requests(chat_request(*row) for row in served)
    rated = [
        ("a1", 1.0, None),
        ("a2", 0.0, None),
        ("a3", 1.0, None),
        ("a3", 0.0, None),  # rated again: the latest (down) wins
        ("a4", 1.0, None),
        ("a5", 0.5, None),
        ("b1", 1.0, None),
        ("b2", 1.0, None),  # only up-votes for the refund prompt: no pair
        ("c1", 0.0, "Use Forgot password on the login page, then check your e-mail."),
        ("c2", 1.0, None),
        ("d1", None, "under billing history"),  # a correction equal to the answer: no pair
        ("e1", 0.0, "blue"),  # a raw completion: never a pair
    ]
    for rid, score, correction in rated:
        add_feedback(store, rid, score, correction)


def chat_request(request_id: str, prompt: str, response: str, endpoint: str = "chat") -> dict:
    """A logged request (a system message and one user turn) answered by version 2."""
    return {
        "timestamp": utc_now(),
        "request_id": request_id,
        "model_version": "2",
        "endpoint": endpoint,
        "messages": [
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": prompt},
        ],
        "response": response,
    }


def add_feedback(
    store: InferenceStore, request_id: str, score: float | None, correction: str | None = None
) -> None:
    """Store one feedback (a score, no thumbs) on a request answered by version 2."""
    store.append_feedback(
        {
            "timestamp": utc_now(),
            "request_id": request_id,
            "model_version": "2",
            "rating": None,
            "score": score,
            "correction": correction,
        }
    )
