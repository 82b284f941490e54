"""Tests for the catalogue's vocabulary file and its schema (``pricer.catalogue.vocabulary``)."""

from __future__ import annotations

from importlib import resources

import numpy as np
import pytest
import yaml

from pricer.catalogue.vocabulary import STRUCTURE_SEED, Tables, VocabularyError, parse_vocabulary, tables


def _packaged() -> dict:
    return yaml.safe_load(resources.files("pricer.catalogue").joinpath("vocabulary.yaml").read_text(encoding="utf-8"))


def _error_for(data: dict) -> str:
    with pytest.raises(VocabularyError) as caught:
        parse_vocabulary(yaml.safe_dump(data))
    return str(caught.value)


def test_the_packaged_vocabulary_loads_once() -> None:
    world = tables()
    assert world is tables()
    assert len(world.category_names) >= 10
    assert len(world.product_names) == len(world.product_category) == len(world.product_log_base)
    assert world.category_brands.shape == (len(world.category_names), world.vocabulary.brands_per_category)


def test_the_structure_is_fixed_by_its_own_seed() -> None:
    again = Tables(parse_vocabulary(yaml.safe_dump(_packaged())))
    assert np.array_equal(again.brand_log_effect, tables().brand_log_effect)
    assert np.array_equal(again.variant_log_effect, tables().variant_log_effect)
    assert STRUCTURE_SEED == 20_261_202


def test_within_category_draws_stay_in_the_category() -> None:
    world = tables()
    rng = np.random.default_rng(0)
    category = rng.integers(0, len(world.category_names), size=5_000)
    product = np.searchsorted(world.product_cumulative, category + rng.random(5_000), side="right")
    assert np.array_equal(world.product_category[product], category)


def test_an_unknown_key_is_named() -> None:
    data = _packaged()
    data["price_scael"] = 1.0
    assert "price_scael" in _error_for(data)


def test_a_bad_value_names_its_key() -> None:
    data = _packaged()
    data["categories"][1]["noise_sigma"] = -0.1
    assert _error_for(data).startswith("vocabulary.yaml: categories.1.noise_sigma:")


def test_a_product_with_an_unknown_spec_is_named() -> None:
    data = _packaged()
    data["categories"][0]["products"][0][4] = "furlongs"
    message = _error_for(data)
    assert "Puzzle Game App" in message and "furlongs" in message


def test_an_accessory_for_an_unknown_host_is_named() -> None:
    data = _packaged()
    data["categories"][1]["accessories"][0][4] = ["Time Machine"]
    assert "Time Machine" in _error_for(data)


def test_broken_yaml_is_reported_as_such() -> None:
    with pytest.raises(VocabularyError, match="not valid YAML"):
        parse_vocabulary("categories: [unclosed")
