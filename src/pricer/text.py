"""The rules a product text meets, the same in training data and at prediction time: one home for
training and every way of pricing.

The fetch stage drops a training row whose text breaks them (counted per reason); ``pricer
predict``, ``pricer.load_model().predict``, the logged pyfunc model and ``mlflow models serve``
refuse such a text, naming its row, instead of pricing it: a text with no visible character hashes
to no feature, and its "price" would be the model's constant for no features at all.
A text longer than :data:`MAX_TEXT_CHARS` is cut to that length, in training and at prediction.
"""

from __future__ import annotations

import math
import re
import unicodedata
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np

from pricer.errors import PricerError

# Texts longer than this are cut, in training data and at prediction alike: no product
# description is that long, and hashing one costs time and memory in proportion.
MAX_TEXT_CHARS = 100_000
PROBLEMS_SHOWN = 5  # rows named in one refusal; the count says how many more
_WORD_CHARACTER = re.compile(r"\w")


class TextError(PricerError, ValueError):
    """Product texts that cannot be priced (missing, empty, not text, not valid UTF-8)."""


def is_blank(text: str) -> bool:
    """Whether ``text`` has no visible character: empty, whitespace, or only control and format
    characters (NUL, escape, zero-width space, a stray byte-order mark)."""
    if _WORD_CHARACTER.search(text):  # the usual case: a letter or digit, nothing more to check
        return False
    # Unicode categories C* (control, format, unassigned) and Z* (separators) draw nothing.
    return all(unicodedata.category(character)[0] in "CZ" for character in text)


def text_problem(value: Any) -> str | None:
    """Why ``value`` cannot be priced, or None when it is a usable product text."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "missing text"
    if not isinstance(value, str):
        return f"text is not a string (got {type(value).__name__}: {str(value)[:40]!r})"
    try:  # before blankness: a lone surrogate is an invisible (C*) character too
        value.encode("utf-8")
    except UnicodeEncodeError as error:  # a lone surrogate: what undecodable bytes become in Python
        byte = ord(value[error.start]) - 0xDC00
        return f"text is not valid UTF-8 (byte 0x{byte:02x} at character {error.start + 1})"
    if is_blank(value):
        return "empty text"
    return None


def cut_text(text: str) -> str:
    """The text as the models were trained on it: at most MAX_TEXT_CHARS characters."""
    return text[:MAX_TEXT_CHARS]


def describe_problems(problems: Sequence[tuple[str, str]]) -> str:
    """``row 2: empty text; row 5: missing text (and 3 more)`` from (row label, problem) pairs."""
    shown = "; ".join(f"{label}: {problem}" for label, problem in problems[:PROBLEMS_SHOWN])
    more = len(problems) - PROBLEMS_SHOWN
    return shown + (f" (and {more} more)" if more > 0 else "")


def usable_texts(texts: Iterable[Any], labels: Iterable[str] | None = None, *,
                 stop_words: str | None = "english") -> list[str]:
    """``texts`` cut to MAX_TEXT_CHARS, or a TextError naming each row (by ``labels``, default
    ``texts[i]``) that breaks the rules, :func:`wordless` with the model's ``stop_words`` included."""
    texts = list(texts)
    labels = list(labels) if labels is not None else [f"texts[{position}]" for position in range(len(texts))]
    problems = [(label, problem) for label, value in zip(labels, texts, strict=True)
                if (problem := text_problem(value))]
    if not problems:
        problems = [(label, NO_WORDS) for label, without_words
                    in zip(labels, wordless([cut_text(text) for text in texts], stop_words), strict=True)
                    if without_words]
    if problems:
        raise TextError(f"{len(problems)} of {len(texts)} texts cannot be priced: {describe_problems(problems)}")
    return [cut_text(text) for text in texts]


# What a text that hashes to no feature is told: the fetch stage drops such rows (``no_words``), so
# no model has learnt a price for them, and a price would be the model's constant for an empty input.
NO_WORDS = "no words the model reads (only stop words, punctuation or one-letter words)"


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
