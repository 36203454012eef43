import random

from llmops.data.dedup import (
    MinHashSettings,
    cross_matches,
    exact_duplicates,
    jaccard,
    key_text,
    near_duplicates,
    record_key,
    shingles,
)

WORDS = [
    "sync",
    "export",
    "plan",
    "billing",
    "note",
    "share",
    "token",
    "device",
    "offline",
    "search",
    "folder",
    "tag",
]
SYSTEM = "You are Driftnote's support assistant. Answer in the Driftnote house style."
QUESTION = "I invited an intern as an editor and now I want them to only read the handbook."
ANSWER = (
    "Hi there, thanks for contacting Driftnote support! Open Share on the note or notebook, "
    "then use the role menu next to each person to switch between Viewer and Editor or remove "
    "them. The Driftnote Support Team"
)
LONG_QUESTION = (
    "We are a team of twelve on the Team plan, and our finance department needs every note from "
    "the shared Projects notebook, including attachments and the comment threads, as a single "
    "archive before the external audit next week. I tried selecting notes one by one in the "
    "desktop app but there are more than four hundred of them and it keeps timing out. Can I "
    "export a whole notebook at once?"
)


def planted_clusters(seed: int = 1, clusters: int = 30, copies: int = 3) -> tuple[list[str], dict]:
    """Distinct random 40-word documents, each followed by copies with one word changed."""
    rng = random.Random(seed)
    texts, cluster_of = [], {}
    for c in range(clusters):
        base = [rng.choice(WORDS) + str(rng.randrange(1000)) for _ in range(40)]
        for k in range(copies + 1):
            words = list(base)
            if k:
                words[rng.randrange(40)] = "edited"
            cluster_of[len(texts)] = c
            texts.append(" ".join(words))
    return texts, cluster_of


def example(question: str, answer: str, system: str | None = None) -> tuple[str, ...]:
    head = [{"role": "system", "content": system}] if system else []
    messages = [
        *head,
        {"role": "user", "content": question},
        {"role": "assistant", "content": answer},
    ]
    return record_key(messages, "example")


def test_near_duplicate_recall_on_planted_clusters():
    texts, cluster_of = planted_clusters()
    found = near_duplicates([(t,) for t in texts], MinHashSettings(threshold=0.7))
    planted = [i for i in cluster_of if i % 4]  # every copy, not the originals
    assert sorted(found) == planted
    assert all(cluster_of[i] == cluster_of[j] for i, j in found.items())
    assert all(j % 4 == 0 for j in found.values())  # the first member is kept


def test_exact_duplicates_ignore_case_and_spacing():
    assert exact_duplicates(["Reset  my password", "reset my password!", "other"]) == {1: 0}


def test_cross_matches_find_contamination():
    texts, _ = planted_clusters(clusters=3, copies=1)
    assert cross_matches(
        [(texts[1],), ("unrelated words here",)], [(texts[0],)], MinHashSettings()
    ) == {0: 0}


def test_keys_are_the_whole_example_or_the_prompt_without_the_system_message():
    messages = [
        {"role": "system", "content": SYSTEM},
        {"role": "user", "content": "hi"},
        {"role": "assistant", "content": "hello"},
        {"role": "user", "content": QUESTION},
        {"role": "assistant", "content": ANSWER},
    ]
    whole = record_key(messages, "example")
    assert whole == (
        f"system: {SYSTEM}",
        f"user: hi\nassistant: hello\nuser: {QUESTION}",
        f"assistant: {ANSWER}",
    )
    assert key_text(whole) == "\n".join(f"{m['role']}: {m['content']}" for m in messages)
    assert record_key(messages, "prompt") == (f"user: hi\nassistant: hello\nuser: {QUESTION}",)


def test_whole_example_variants_of_one_to_three_words_are_near_duplicates():
    edits = [
        example(QUESTION.replace("intern", "internn"), ANSWER),
        example(QUESTION, ANSWER.replace("Viewer", "viewer,").replace("remove", "delete")),
        example(QUESTION, ANSWER.replace("role menu next to", "roles list beside")),
    ]
    found = near_duplicates([example(QUESTION, ANSWER), *edits], MinHashSettings())
    assert found == {1: 0, 2: 0, 3: 0}


def test_a_long_shared_part_does_not_make_a_near_duplicate():
    # Each pair's whole-example Jaccard reaches the 0.8 threshold: the shared canned answer, or
    # the shared long question, outweighs the part that differs. The part check decides.
    paraphrase = (
        example("Make an editor a viewer?", ANSWER),
        example("Make an editor read-only?", ANSWER),
    )
    another_answer = (
        example(LONG_QUESTION, "Yes: open the notebook menu and choose Export notebook.", SYSTEM),
        example(LONG_QUESTION, "No, only one note at a time for now.", SYSTEM),
    )
    another_system = (example(QUESTION, ANSWER, SYSTEM), example(QUESTION, ANSWER))
    settings = MinHashSettings()
    for pair in (paraphrase, another_answer, another_system):
        assert whole_jaccard(*pair, settings) >= settings.threshold
        assert near_duplicates(list(pair), settings) == {}
        assert exact_duplicates([key_text(k) for k in pair]) == {}


def whole_jaccard(a: tuple[str, ...], b: tuple[str, ...], settings: MinHashSettings) -> float:
    return jaccard(set(shingles(key_text(a), settings)), set(shingles(key_text(b), settings)))
