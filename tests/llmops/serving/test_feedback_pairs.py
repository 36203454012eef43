"""Preference pairs from feedback: corrections, up- vs down-rated answers to one prompt, on a
log with the usual mess (re-rated requests, repeated answers, raw completions)."""

import hashlib

import pytest
from feedback_support import EXPORT, GOOD_EXPORT, fill_log

from llmops.serving.feedback import feedback_preference_pairs, preference_signal
from llmops.serving.store import InferenceStore


def pair_id(*request_ids: str) -> str:
    return "pair-" + hashlib.sha256("\0".join(request_ids).encode()).hexdigest()[:16]


def test_pairs_from_corrections_and_from_ratings_of_one_prompt(tmp_path):
    log = InferenceStore(str(tmp_path))
    fill_log(log)
    pairs = feedback_preference_pairs(log.read_answers(), log.read_feedback(), 1.0, 0.0)
    assert [(p["id"], p["chosen"], p["rejected"]) for p in pairs] == [
        (
            pair_id("c1"),
            "Use Forgot password on the login page, then check your e-mail.",
            "Call us.",
        ),
        (pair_id("a1", "a2"), GOOD_EXPORT, "Export is not supported."),
        (pair_id("a1", "a3"), GOOD_EXPORT, "You cannot export notes, sorry."),
        (pair_id("c2", "c1"), "Use Forgot password on the login page.", "Call us."),
    ]
    assert pairs[1]["messages"] == [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": EXPORT},
    ]
    # The same log exported again: the same pairs under the same ids.
    again = feedback_preference_pairs(log.read_answers(), log.read_feedback(), 1.0, 0.0)
    assert again == pairs


def test_a_looser_rejection_threshold_adds_the_lukewarm_answer(tmp_path):
    log = InferenceStore(str(tmp_path))
    fill_log(log)
    pairs = feedback_preference_pairs(log.read_answers(), log.read_feedback(), 1.0, 0.5)
    assert [p["id"] for p in pairs if p["rejected"] == "Open Settings > Export."] == [
        pair_id("a1", "a5")
    ]
    with pytest.raises(ValueError, match="must be below min_score"):
        feedback_preference_pairs(log.read_answers(), log.read_feedback(), 0.5, 0.5)


def test_corrections_and_thumbs_are_preference_signals():
    assert preference_signal("Use Forgot password.", 0.0) == "correction"
    assert [preference_signal(None, s) for s in (1.0, 0.0, 0.5, None)] == [
        "rating",
        "rating",
        None,
        None,
    ]
    assert preference_signal("  ", 0.7) is None  # a blank correction corrects nothing
