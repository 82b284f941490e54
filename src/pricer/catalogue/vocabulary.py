"""The catalogue's vocabulary: ``vocabulary.yaml`` checked against a schema and laid out as arrays.

The YAML file is the world the generator draws from (categories, products, brands, words and
their price effects). This module reads it once with :mod:`importlib.resources` (so it works
from an installed wheel too), validates it with pydantic, and flattens the nested tables into
parallel numpy arrays so that generation is pure array indexing. The context-dependent parts
of the world (each brand's tier in each category, each variant word's twist per category) are
drawn here from a fixed structure seed: they are part of the world, identical for every data
seed.
"""

from __future__ import annotations

import functools
from importlib import resources
from typing import Annotated

import numpy as np
import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

#: Seed of the world's fixed structure (brand tiers per category, variant twists). Not the
#: data seed: changing ``params.yaml``'s ``seed`` draws new items from the same world.
STRUCTURE_SEED = 20_261_202

Share = Annotated[float, Field(ge=0)]
Positive = Annotated[float, Field(gt=0)]
Fraction = Annotated[float, Field(ge=0, le=1)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Product(_Strict):
    noun: str
    share: Positive
    base_price: Positive
    weight_lb: Positive
    spec: str
    elasticity: float
    material_sensitivity: Annotated[float, Field(ge=0)]


class Accessory(_Strict):
    noun: str
    share: Positive
    base_price: Positive
    weight_lb: Positive
    hosts: list[str] = []


class Category(_Strict):
    name: str
    share: Positive
    tail_labels: list[str]
    variant_scale: float
    condition_scale: float
    pack_exponent: Positive
    noise_sigma: Positive
    accessory_share: Fraction
    digital: bool
    products: Annotated[list[Product], Field(min_length=2)]
    accessories: list[Accessory]
    phrases: Annotated[list[str], Field(min_length=1)]

    @model_validator(mode="before")
    @classmethod
    def _rows_to_records(cls, data: dict) -> dict:
        # The YAML writes products and accessories as compact rows; name their fields here.
        data = dict(data)
        data["products"] = [dict(zip(Product.model_fields, row, strict=False)) for row in data.get("products", [])]
        data["accessories"] = [dict(zip(Accessory.model_fields, row, strict=False))
                               for row in data.get("accessories", [])]
        return data

    @model_validator(mode="after")
    def _accessories_when_sold(self) -> Category:
        if self.accessory_share > 0 and not self.accessories:
            raise ValueError(f"category {self.name!r} has accessory_share > 0 but no accessories")
        nouns = {product.noun for product in self.products}
        for accessory in self.accessories:
            unknown = sorted(set(accessory.hosts) - nouns)
            if unknown:
                raise ValueError(f"{self.name}: accessory {accessory.noun!r} names unknown hosts {unknown}")
        return self


class Vocabulary(_Strict):
    """The schema of ``vocabulary.yaml`` (see the comments there for each key's meaning)."""

    empty_category_share: Fraction
    tail_label_share: Fraction
    empty_brand_share: Fraction
    spec_kinds: dict[str, tuple[str, str, list[int]]]
    brands: Annotated[list[str], Field(min_length=2)]
    brands_per_category: Annotated[int, Field(ge=2)]
    brand_shared_sigma: Annotated[float, Field(ge=0)]
    brand_category_sigma: Annotated[float, Field(ge=0)]
    variants: list[tuple[str, Positive, Share]]
    variant_twist_sigma: Annotated[float, Field(ge=0)]
    materials: list[tuple[str, Positive, Share]]
    conditions: list[tuple[str, Positive, Share]]
    packs: list[tuple[Annotated[int, Field(ge=1)], Share]]
    packable_max_base_price: Positive
    packable_max_weight_lb: Positive
    bundle_share: Fraction
    accessory_host_elasticity: float
    outlier_share: Fraction
    outlier_sigma: Annotated[float, Field(ge=0)]
    outlier_shift: float
    duplicate_share: Annotated[float, Field(ge=0, lt=1)]
    duplicate_price_sigma: Annotated[float, Field(ge=0)]
    price_scale: Positive
    price_endings: list[tuple[Annotated[float, Field(ge=0, lt=1)], Share]]
    summary_max_chars: Annotated[int, Field(ge=200)]
    categories: Annotated[list[Category], Field(min_length=2)]
    adjectives: list[str]
    colors: list[str]
    openers: list[str]
    generic_phrases: list[str]
    closers: list[str]
    boilerplate: list[str]

    @model_validator(mode="after")
    def _references_resolve(self) -> Vocabulary:
        for category in self.categories:
            for product in category.products:
                if product.spec not in self.spec_kinds:
                    raise ValueError(f"{category.name}: product {product.noun!r} names unknown spec {product.spec!r}")
        if self.variants[0][0] or self.conditions[0][0] or self.packs[0][0] != 1:
            raise ValueError("the first variant and condition must be '' and the first pack 1 (the plain item)")
        if self.brands_per_category > len(self.brands):
            raise ValueError("brands_per_category is larger than the list of brands")
        return self


def _probabilities(shares: list[float] | np.ndarray) -> np.ndarray:
    values = np.asarray(shares, dtype=np.float64)
    return values / values.sum()


def _within_group_cumulative(group: np.ndarray, shares: np.ndarray) -> np.ndarray:
    """``group + cumulative share inside the group``: one increasing array for all groups.

    ``searchsorted(result, group_of_row + uniform)`` then draws an entry of each row's own
    group with that group's shares, for all rows at once.
    """
    cumulative = np.empty(len(shares), dtype=np.float64)
    for value in np.unique(group):
        members = group == value
        cumulative[members] = value + np.cumsum(_probabilities(shares[members]))
    return cumulative


class Tables:
    """The vocabulary flattened into parallel arrays (one row per product, brand slot, ...)."""

    def __init__(self, vocabulary: Vocabulary) -> None:
        self.vocabulary = vocabulary
        categories = vocabulary.categories
        self.category_names = [c.name for c in categories]
        self.category_probs = _probabilities([c.share for c in categories])
        self.accessory_share = np.asarray([c.accessory_share for c in categories])
        self.variant_scale = np.asarray([c.variant_scale for c in categories])
        self.condition_scale = np.asarray([c.condition_scale for c in categories])
        self.pack_exponent = np.asarray([c.pack_exponent for c in categories])
        self.noise_sigma = np.asarray([c.noise_sigma for c in categories])
        self.digital = np.asarray([c.digital for c in categories])
        self._products(vocabulary)
        self._accessories(vocabulary)
        self._specs(vocabulary)
        self._structure(vocabulary)
        self._words(vocabulary)

    def _products(self, vocabulary: Vocabulary) -> None:
        rows = [(index, p) for index, c in enumerate(vocabulary.categories) for p in c.products]
        self.product_category = np.asarray([index for index, _ in rows], dtype=np.int64)
        self.product_names = [p.noun for _, p in rows]
        shares = np.asarray([p.share for _, p in rows])
        self.product_cumulative = _within_group_cumulative(self.product_category, shares)
        self.product_log_base = np.log([p.base_price for _, p in rows])
        self.product_weight = np.asarray([p.weight_lb for _, p in rows])
        self.product_elasticity = np.asarray([p.elasticity for _, p in rows])
        self.product_material_sensitivity = np.asarray([p.material_sensitivity for _, p in rows])
        self.product_spec_kind = np.asarray([list(vocabulary.spec_kinds).index(p.spec) for _, p in rows])
        self.product_packable = (
            (np.asarray([p.base_price for _, p in rows]) <= vocabulary.packable_max_base_price)
            & (self.product_weight <= vocabulary.packable_max_weight_lb)
            & ~self.digital[self.product_category]
        )

    def _accessories(self, vocabulary: Vocabulary) -> None:
        rows = [(index, a) for index, c in enumerate(vocabulary.categories) for a in c.accessories]
        self.accessory_category = np.asarray([index for index, _ in rows], dtype=np.int64)
        self.accessory_names = [a.noun for _, a in rows]
        self.accessory_cumulative = _within_group_cumulative(
            self.accessory_category, np.asarray([a.share for _, a in rows])
        )
        self.accessory_log_base = np.log([a.base_price for _, a in rows])
        self.accessory_weight = np.asarray([a.weight_lb for _, a in rows])
        # Host products per accessory, padded to a matrix; a count of 0 means a generic part.
        product_index = {(c, name): i
                         for i, (c, name) in enumerate(zip(self.product_category, self.product_names, strict=False))}
        hosts = [[product_index[(index, host)] for host in a.hosts] for index, a in rows]
        self.accessory_host_count = np.asarray([len(h) for h in hosts], dtype=np.int64)
        self.accessory_hosts = np.zeros((len(rows), max([1, *map(len, hosts)])), dtype=np.int64)
        for row, host_list in enumerate(hosts):
            self.accessory_hosts[row, : len(host_list)] = host_list

    def _specs(self, vocabulary: Vocabulary) -> None:
        """Every (spec kind, level) pair gets one row: its text and log(level / typical level)."""
        self.spec_text: list[str] = []
        self.spec_label: list[str] = []
        log_ratio: list[float] = []
        counts, firsts = [], []
        for label, template, levels in vocabulary.spec_kinds.values():
            firsts.append(len(self.spec_text))
            counts.append(len(levels))
            centre = float(np.mean(np.log(levels)))
            for level in levels:
                self.spec_text.append(template.format(level) if template else "")
                self.spec_label.append(label)
                log_ratio.append(float(np.log(level)) - centre)
        self.spec_log_ratio = np.asarray(log_ratio)
        self.spec_level_count = np.asarray(counts, dtype=np.int64)
        self.spec_first_level = np.asarray(firsts, dtype=np.int64)

    def _structure(self, vocabulary: Vocabulary) -> None:
        """The world's fixed interactions, drawn once from :data:`STRUCTURE_SEED`."""
        rng = np.random.default_rng(STRUCTURE_SEED)
        n_categories, slots = len(vocabulary.categories), vocabulary.brands_per_category
        self.brand_names = list(vocabulary.brands)
        self.category_brands = np.stack(
            [rng.choice(len(self.brand_names), size=slots, replace=False) for _ in range(n_categories)]
        )
        shared = rng.normal(0.0, vocabulary.brand_shared_sigma, size=len(self.brand_names))
        per_category = rng.normal(0.0, vocabulary.brand_category_sigma, size=(n_categories, slots))
        self.brand_log_effect = shared[self.category_brands] + per_category
        # A few brands dominate each category's listings, as on a real marketplace.
        self.brand_slot_probs = _probabilities(1.0 / (np.arange(slots) + 2.0))

        variant_log = np.log([mult for _, mult, _ in vocabulary.variants])
        twist = rng.normal(0.0, vocabulary.variant_twist_sigma, size=(len(variant_log), n_categories))
        twist[0] = 0.0  # the plain model is the reference in every category
        self.variant_log_effect = variant_log[:, None] * self.variant_scale[None, :] + twist

    def _words(self, vocabulary: Vocabulary) -> None:
        self.variant_names = [v for v, _, _ in vocabulary.variants]
        self.variant_probs = _probabilities([p for _, _, p in vocabulary.variants])
        self.material_names = [m for m, _, _ in vocabulary.materials]
        self.material_log = np.log([mult for _, mult, _ in vocabulary.materials])
        self.material_probs = _probabilities([p for _, _, p in vocabulary.materials])
        self.condition_names = [c for c, _, _ in vocabulary.conditions]
        self.condition_log = np.log([mult for _, mult, _ in vocabulary.conditions])
        self.condition_probs = _probabilities([p for _, _, p in vocabulary.conditions])
        self.pack_counts = np.asarray([count for count, _ in vocabulary.packs], dtype=np.int64)
        self.pack_probs = _probabilities([p for _, p in vocabulary.packs])
        self.ending_cents = np.asarray([cents for cents, _ in vocabulary.price_endings])
        ending_shares = [share for _, share in vocabulary.price_endings]
        # The last entry keeps the drawn cents.
        self.ending_probs = np.append(ending_shares, max(0.0, 1.0 - sum(ending_shares)))
        self.ending_probs = _probabilities(self.ending_probs)
        self.tail_labels = [label for c in vocabulary.categories for label in c.tail_labels]
        self.tail_category = np.asarray(
            [index for index, c in enumerate(vocabulary.categories) for _ in c.tail_labels], dtype=np.int64
        )
        # Phrases: each category's own, then the generic ones, in one flat list.
        self.phrases = [phrase for c in vocabulary.categories for phrase in c.phrases]
        self.phrase_first = np.cumsum([0] + [len(c.phrases) for c in vocabulary.categories])[:-1]
        self.phrase_count = np.asarray([len(c.phrases) for c in vocabulary.categories], dtype=np.int64)
        self.generic_phrase_first = len(self.phrases)
        self.phrases += vocabulary.generic_phrases
        # Every description sentence precomposed (opener, phrase, closer), so that writing a
        # sentence slot for all rows is one lookup; the extra last entry is the empty slot.
        self.sentences = [
            f"{opener} {phrase} {closer}. "
            for opener in vocabulary.openers for phrase in self.phrases for closer in vocabulary.closers
        ] + [""]

    def sentence_index(self, opener: np.ndarray, phrase: np.ndarray, closer: np.ndarray) -> np.ndarray:
        """Row of :attr:`sentences` for (opener, flat phrase, closer) index arrays."""
        n_closers = len(self.vocabulary.closers)
        return (opener * len(self.phrases) + phrase) * n_closers + closer


class VocabularyError(ValueError):
    """``vocabulary.yaml`` does not match its schema; the message names the key."""


def parse_vocabulary(text: str, source: str = "vocabulary.yaml") -> Vocabulary:
    """Validate the YAML text of a vocabulary; raise :class:`VocabularyError` naming the key."""
    try:
        return Vocabulary.model_validate(yaml.safe_load(text))
    except yaml.YAMLError as error:
        raise VocabularyError(f"{source}: not valid YAML ({error})") from None
    except ValidationError as error:
        first = error.errors()[0]
        key = ".".join(str(part) for part in first["loc"]) or "(top level)"
        raise VocabularyError(f"{source}: {key}: {first['msg']}") from None


@functools.cache
def tables() -> Tables:
    """The packaged vocabulary, read and flattened once per process."""
    text = resources.files("pricer.catalogue").joinpath("vocabulary.yaml").read_text(encoding="utf-8")
    return Tables(parse_vocabulary(text))
