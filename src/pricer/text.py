"""The rules a product text meets, the same in training data and at prediction time."""

from __future__ import annotations

# Texts longer than this are cut, in training data and at prediction alike: no product
# description is that long, and hashing one costs time and memory in proportion.
MAX_TEXT_CHARS = 100_000
