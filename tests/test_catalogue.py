"""Tests for the embedded product catalogue (``pricer.catalogue``).

The catalogue is the pipeline's default data, so these tests pin down the contract the
later stages rely on: the Hub's column layout, reproducibility from the seed, prices in
range, and a price that genuinely depends on the words in ``summary``.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.feature_extraction.text import HashingVectorizer
from sklearn.linear_model import Ridge

from pricer.catalogue import (
    BRAND_TIERS,
    CATALOGUE_COLUMNS,
    MAX_PRICE,
    MIN_PRICE,
    PROMPT_PREFIX,
    PROMPT_SUFFIX,
    generate_catalogue,
)

N_ITEMS = 2_000
SEED = 42

SUMMARY_PATTERN = (
    r"Title: [^\n]+\nCategory: [^\n]+\nBrand: [^\n]+\nDescription: [^\n]+\nDetails: [^\n]+"
)


@pytest.fixture(scope="module")
def catalogue() -> pd.DataFrame:
    return generate_catalogue(N_ITEMS, SEED)


def _brand_tier_of(frame: pd.DataFrame) -> pd.Series:
    """Map each row's ``Brand:`` line to its tier index (0 budget, 1 mid, 2 premium)."""
    tier_by_brand = {name: tier for tier, (names, _, _) in enumerate(BRAND_TIERS) for name in names}
    brand = frame["summary"].str.extract(r"\nBrand: ([^\n]+)\n", expand=False)
    return brand.map(tier_by_brand)


def test_columns_and_dtypes(catalogue: pd.DataFrame) -> None:
    assert list(catalogue.columns) == list(CATALOGUE_COLUMNS)
    assert list(catalogue.columns) == [
        "title", "category", "price", "full", "weight", "summary", "prompt", "id",
    ]
    for column in ("title", "category", "full", "summary", "prompt"):
        assert catalogue[column].dtype == "str", column
        assert catalogue[column].notna().all(), column
        assert (catalogue[column].str.len() > 0).all(), column
    assert catalogue["price"].dtype == np.float64
    assert catalogue["weight"].dtype == np.float64
    assert catalogue["id"].dtype == np.int64
    assert len(catalogue) == N_ITEMS


def test_same_seed_is_identical() -> None:
    first = generate_catalogue(N_ITEMS, SEED)
    second = generate_catalogue(N_ITEMS, SEED)
    pd.testing.assert_frame_equal(first, second, check_exact=True)


def test_different_seed_differs(catalogue: pd.DataFrame) -> None:
    other = generate_catalogue(N_ITEMS, SEED + 1)
    assert not catalogue["price"].equals(other["price"])
    assert (catalogue["summary"] != other["summary"]).mean() > 0.9


def test_prices_in_bounds_and_in_cents(catalogue: pd.DataFrame) -> None:
    price = catalogue["price"]
    assert price.min() >= MIN_PRICE
    assert price.max() <= MAX_PRICE
    assert np.allclose(price, price.round(2))


def test_weights_positive(catalogue: pd.DataFrame) -> None:
    assert (catalogue["weight"] > 0).all()


def test_summary_has_hub_shape(catalogue: pd.DataFrame) -> None:
    assert catalogue["summary"].str.fullmatch(SUMMARY_PATTERN).all()
    title_line = catalogue["summary"].str.extract(r"^Title: ([^\n]+)\n", expand=False)
    category_line = catalogue["summary"].str.extract(r"\nCategory: ([^\n]+)\n", expand=False)
    assert (title_line == catalogue["title"]).all()
    assert (category_line == catalogue["category"]).all()


def test_prompt_wraps_summary(catalogue: pd.DataFrame) -> None:
    expected = PROMPT_PREFIX + catalogue["summary"] + PROMPT_SUFFIX
    assert (catalogue["prompt"] == expected).all()
    assert catalogue["prompt"].iloc[0].startswith("What does this cost to the nearest dollar?\n\n")
    assert catalogue["prompt"].iloc[0].endswith("\n\nPrice is $")


def test_full_starts_with_title(catalogue: pd.DataFrame) -> None:
    first_line = catalogue["full"].str.split("\n", n=1).str[0]
    assert (first_line == catalogue["title"]).all()
    assert (catalogue["full"].str.len() > catalogue["title"].str.len()).all()


def test_ids_are_unique_range(catalogue: pd.DataFrame) -> None:
    assert catalogue["id"].is_unique
    assert catalogue["id"].tolist() == list(range(N_ITEMS))


def test_around_fifteen_categories(catalogue: pd.DataFrame) -> None:
    assert catalogue["category"].nunique() == 15
    assert "Electronics" in set(catalogue["category"])


def test_price_distribution_is_heavy_tailed(catalogue: pd.DataFrame) -> None:
    price = catalogue["price"]
    assert price.mean() > price.median() * 1.3
    assert 15 <= price.median() <= 60


def test_premium_brands_cost_more_than_budget(catalogue: pd.DataFrame) -> None:
    tier = _brand_tier_of(catalogue)
    assert tier.notna().all()
    log_price = np.log(catalogue["price"])
    budget, mid, premium = (log_price[tier == t].mean() for t in (0, 1, 2))
    assert budget < mid < premium


def test_packs_of_twelve_cost_more_than_singles(catalogue: pd.DataFrame) -> None:
    log_price = np.log(catalogue["price"])
    pack_of_12 = catalogue["title"].str.contains("(Pack of 12)", regex=False)
    single = ~catalogue["title"].str.contains("(Pack of", regex=False)
    assert pack_of_12.sum() >= 10
    assert log_price[pack_of_12].mean() > log_price[single].mean() + np.log(2)


def test_bigger_spec_costs_more() -> None:
    # Spec levels are drawn independently of the product, so rows with "512GB" and rows
    # with "16GB" have the same product mix and differ only by the spec's effect.
    frame = generate_catalogue(20_000, SEED)
    log_price = np.log(frame["price"])
    big = frame["title"].str.contains(" 512GB ", regex=False)
    small = frame["title"].str.contains(" 16GB ", regex=False)
    assert big.sum() >= 20 and small.sum() >= 20
    assert log_price[big].mean() > log_price[small].mean()


def test_bag_of_words_beats_median_baseline() -> None:
    frame = generate_catalogue(2_500, SEED)
    train, test = frame.iloc[:2_000], frame.iloc[2_000:]
    vectorizer = HashingVectorizer(n_features=5000, stop_words="english", binary=True)
    model = Ridge(alpha=1.0).fit(vectorizer.transform(train["summary"]), np.log1p(train["price"]))
    predicted = np.expm1(model.predict(vectorizer.transform(test["summary"])))
    model_mae = np.abs(test["price"].to_numpy() - predicted).mean()
    baseline_mae = np.abs(test["price"] - train["price"].median()).mean()
    assert model_mae <= 0.75 * baseline_mae, (model_mae, baseline_mae)


@pytest.mark.parametrize("n_items", [0, -1, -100])
def test_invalid_n_items_raises(n_items: int) -> None:
    with pytest.raises(ValueError, match="n_items"):
        generate_catalogue(n_items, SEED)


def test_non_integer_n_items_raises() -> None:
    with pytest.raises(TypeError, match="n_items"):
        generate_catalogue(2.5, SEED)  # type: ignore[arg-type]


def test_single_item() -> None:
    frame = generate_catalogue(1, SEED)
    assert len(frame) == 1
    assert frame["id"].tolist() == [0]
