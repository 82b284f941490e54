"""The rules a product text meets, the same in training data and at prediction time."""

from __future__ import annotations

import re
from collections.abc import Sequence

import numpy as np

# Texts longer than this are cut, in training data and at prediction alike: no product
# description is that long, and hashing one costs time and memory in proportion.
MAX_TEXT_CHARS = 100_000


def wordless(texts: Sequence[str], stop_words: str | None) -> np.ndarray:
    """Which texts hash to no feature: not one word the vectorizer reads (two or more letters or
    digits, lower-cased, ``stop_words`` left out). The fetch stage drops such rows (``no_words``)
    and ``pricer predict`` refuses them, so no model learns or quotes the price of an empty input.
    ``stop_words`` is ``vectorize.stop_words``; the other settings are the vectorizer's defaults,
    which pricer.features.VectorizerSettings keeps."""
    from sklearn.feature_extraction.text import HashingVectorizer  # scikit-learn's import is slow

    vectorizer = HashingVectorizer(stop_words=stop_words)
    preprocess, token = vectorizer.build_preprocessor(), re.compile(vectorizer.token_pattern)
    ignored = vectorizer.get_stop_words() or frozenset()
    return np.fromiter((not any(match.group() not in ignored for match in token.finditer(preprocess(text)))
                        for text in texts), dtype=bool, count=len(texts))
