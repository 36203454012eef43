import random

from llmops.data.dedup import MinHashSettings, cross_matches, exact_duplicates, near_duplicates

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


def test_near_duplicate_recall_on_planted_clusters():
    texts, cluster_of = planted_clusters()
    found = near_duplicates(texts, MinHashSettings(threshold=0.7))
    planted = [i for i in cluster_of if i % 4]  # every copy, not the originals
    assert sorted(found) == planted
    assert all(cluster_of[i] == cluster_of[j] for i, j in found.items())
    assert all(j % 4 == 0 for j in found.values())  # the first member is kept


def test_exact_duplicates_ignore_case_and_spacing():
    assert exact_duplicates(["Reset  my password", "reset my password!", "other"]) == {1: 0}


def test_cross_matches_find_contamination():
    texts, _ = planted_clusters(clusters=3, copies=1)
    assert cross_matches([texts[1], "unrelated words here"], [texts[0]], MinHashSettings()) == {
        0: 0
    }
