"""Turning human feedback into training records (plain functions over the inference log)."""

import pandas as pd

from llmops.records import RECORD_COLUMNS


def feedback_training_records(
    requests: pd.DataFrame, feedback: pd.DataFrame, min_score: float
) -> pd.DataFrame:
    """Records (record_id, source, messages) from chat requests people corrected or rated well.

    The latest feedback per request wins. A correction replaces the served answer; without
    one, an answer scored at least `min_score` is kept as it was served; anything else is left
    out. Raw completions (no chat turns) are skipped: our records are conversations.
    """
    latest = feedback.drop_duplicates("request_id", keep="last")
    chats = requests[requests["endpoint"] == "chat"].drop_duplicates("request_id", keep="last")
    joined = latest.merge(chats, on="request_id", suffixes=("_feedback", ""))
    rows = []
    for row in joined.itertuples(index=False):
        if isinstance(row.correction, str) and row.correction.strip():
            answer = row.correction
        elif pd.notna(row.score) and row.score >= min_score:
            answer = row.response
        else:
            continue
        prompt = [dict(m) for m in row.messages]
        rows.append(
            {
                "record_id": f"feedback-{row.request_id}",
                "source": f"feedback:{row.request_id}",
                "messages": [*prompt, {"role": "assistant", "content": answer}],
            }
        )
    return pd.DataFrame(rows, columns=list(RECORD_COLUMNS))
