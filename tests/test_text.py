"""The text rules every way of pricing shares with training (pricer.text)."""

from __future__ import annotations

import math

import pandas as pd
import pytest

from pricer.sources.validate import validate_split
from pricer.text import MAX_TEXT_CHARS, TextError, is_blank, text_problem, usable_texts

BLANK = ["", " ", "\t\n", "\x00", "\x00\x00", "\u200b", "\ufeff", "\x1b", "\u3000\u200b"]
VISIBLE = ["a", "!!!", "Title: lamp", "\x00a", "€", "日本", "🙂", "_"]


@pytest.mark.parametrize("text", BLANK)
def test_a_text_without_a_visible_character_is_blank(text):
    assert is_blank(text) and text_problem(text) == "empty text"


@pytest.mark.parametrize("text", VISIBLE)
def test_a_text_with_a_visible_character_is_usable(text):
    assert not is_blank(text) and text_problem(text) is None


def test_training_drops_exactly_the_texts_pricing_refuses():
    texts = BLANK + VISIBLE
    frame = pd.DataFrame({"id": range(len(texts)), "summary": texts, "price": [1.0] * len(texts)})
    cleaned, counts = validate_split(frame, split="train", text_field="summary", source="test")
    assert counts["empty_text"] == len(BLANK)
    assert counts["no_words"] == 6  # visible, but not a word of two letters or digits: "a", "!!!", "€", ...

    def priced(text: str) -> bool:
        try:
            usable_texts([text])
        except TextError:
            return False
        return True

    assert cleaned["summary"].tolist() == [text for text in texts if priced(text)] == ["Title: lamp", "日本"]


@pytest.mark.parametrize(("value", "problem"), [
    (None, "missing text"), (math.nan, "missing text"), (3, "text is not a string (got int: '3')"),
    (b"lamp", "text is not a string (got bytes: \"b'lamp'\")"),
    ("caf\udce9", "text is not valid UTF-8 (byte 0xe9 at character 4)"),
    ("\udcff", "text is not valid UTF-8 (byte 0xff at character 1)"),  # not "empty": a byte was there
])
def test_what_is_not_a_text_is_named(value, problem):
    assert text_problem(value) == problem


def test_usable_texts_cuts_long_ones_and_names_every_bad_row():
    assert usable_texts(["ab" * (MAX_TEXT_CHARS + 7), "lamp"]) == [("ab" * MAX_TEXT_CHARS)[:MAX_TEXT_CHARS], "lamp"]
    with pytest.raises(TextError, match=r"^7 of 8 texts cannot be priced: texts\[0\]: empty text; .*; "
                                        r"texts\[4\]: empty text \(and 2 more\)$"):
        usable_texts([""] * 7 + ["lamp"])
    with pytest.raises(TextError, match=r"row 9: missing text$"):
        usable_texts(["lamp", None], labels=["row 8", "row 9"])
