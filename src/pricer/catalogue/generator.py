"""Draw the catalogue's items and their prices: every random choice, vectorised, in a fixed order.

An item is a main product or an accessory made for a host product of its category. Its price
is built in log space from the world in ``vocabulary.yaml`` with interactions a linear model
over words cannot write down:

* a brand's tier depends on the category (premium in one, budget in another);
* a variant word ("Pro", "Lite") moves price by a different amount in each category;
* a material matters as much as its product's material sensitivity says;
* a spec number's effect depends on its unit and product (elasticity per product);
* an accessory's title names its host's brand, variant and spec, which barely move its price;
* bundles add two products' prices in dollars;
* noise is heavy-tailed (outlier listings, skewed cheap), and near-duplicate relistings of a
  product come at different prices.

Items whose price falls outside the Hub's range are redrawn (the Hub's curation dropped
them), so the distribution has no pile-up at the bounds.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, fields

import numpy as np

from pricer.catalogue.vocabulary import Tables

#: Price bounds of the Hub data (items outside them were dropped by its curation).
MIN_PRICE: float = 0.50
MAX_PRICE: float = 999.49

#: Description sentences per item: at most this many, so the text fits in fixed slots.
MAX_SENTENCES = 9


@dataclass
class ItemDraw:
    """Every random choice for a batch of items, as index arrays into the vocabulary tables.

    ``product`` is the item's product, or an accessory's host product; ``accessory`` is -1 for
    main products; ``has_host`` is false for generic accessories (no host in their title or price);
    ``partner`` is the bundled second product or -1; ``label`` is 0 for the
    category's main label, -1 for an empty one, or 1 + a tail-label index.
    """

    category: np.ndarray
    product: np.ndarray
    accessory: np.ndarray
    has_host: np.ndarray
    brand_slot: np.ndarray
    host_brand_slot: np.ndarray
    spec: np.ndarray
    variant: np.ndarray
    material: np.ndarray
    condition: np.ndarray
    pack: np.ndarray
    partner: np.ndarray
    label: np.ndarray
    brand_line_empty: np.ndarray
    adjective: np.ndarray
    color: np.ndarray
    sentence: np.ndarray
    boilerplate: np.ndarray
    model_prefix: np.ndarray
    model_number: np.ndarray
    expected_log_price: np.ndarray
    price: np.ndarray
    weight: np.ndarray

    def take(self, rows: np.ndarray) -> ItemDraw:
        return ItemDraw(**{f.name: getattr(self, f.name)[rows] for f in fields(self)})

    def __len__(self) -> int:
        return len(self.category)


def _grouped_choice(rng: np.random.Generator, cumulative: np.ndarray, group: np.ndarray) -> np.ndarray:
    """One entry of each row's own group, drawn with the group's shares (see vocabulary)."""
    index = np.searchsorted(cumulative, group + rng.random(len(group)), side="right")
    return np.minimum(index, len(cumulative) - 1)


def _draw_batch(rng: np.random.Generator, world: Tables, n_items: int) -> ItemDraw:
    vocabulary = world.vocabulary
    category = rng.choice(len(world.category_names), size=n_items, p=world.category_probs)
    product = _grouped_choice(rng, world.product_cumulative, category)
    accessory_category = np.isin(category, world.accessory_category)
    is_accessory = (rng.random(n_items) < world.accessory_share[category]) & accessory_category
    accessory = np.where(
        is_accessory, _grouped_choice(rng, world.accessory_cumulative, category * accessory_category), -1
    )
    # An accessory is made for one of its host products (its title names it); generic parts
    # (no hosts) keep the drawn product only as a hidden, price-neutral choice.
    accessory_row = np.maximum(accessory, 0)
    host_count = world.accessory_host_count[accessory_row]
    has_host = is_accessory & (host_count > 0)
    host_column = np.floor(rng.random(n_items) * np.maximum(host_count, 1)).astype(np.int64)
    product = np.where(has_host, world.accessory_hosts[accessory_row, host_column], product)
    slots = len(world.brand_slot_probs)
    brand_slot = rng.choice(slots, size=n_items, p=world.brand_slot_probs)
    host_brand_slot = rng.choice(slots, size=n_items, p=world.brand_slot_probs)

    spec_kind = world.product_spec_kind[product]
    spec = world.spec_first_level[spec_kind] + rng.integers(0, world.spec_level_count[spec_kind])
    variant = rng.choice(len(world.variant_names), size=n_items, p=world.variant_probs)
    digital = world.digital[category]
    has_material = (world.product_material_sensitivity[product] > 0) & ~is_accessory
    material = np.where(
        has_material, rng.choice(len(world.material_names), size=n_items, p=world.material_probs), -1
    )
    condition = rng.choice(len(world.condition_names), size=n_items, p=world.condition_probs)
    condition = np.where(digital, 0, condition)
    packable = world.product_packable[product] | (is_accessory & ~digital)
    pack = np.where(packable, rng.choice(len(world.pack_counts), size=n_items, p=world.pack_probs), 0)
    bundled = (rng.random(n_items) < vocabulary.bundle_share) & ~is_accessory & ~digital
    partner = np.where(bundled, _grouped_choice(rng, world.product_cumulative, category), -1)
    partner = np.where(partner == product, -1, partner)

    label_draw = rng.random(n_items)
    tail_count = np.bincount(world.tail_category, minlength=len(world.category_names))[category]
    tail_first = np.searchsorted(world.tail_category, category)
    # Tail labels follow a Zipf-like law within their category: the first is the most common.
    tail_rank = np.floor(tail_count * rng.random(n_items) ** 2).astype(np.int64)
    label = np.where(label_draw < vocabulary.empty_category_share, -1, 0)
    is_tail = (label_draw >= 1.0 - vocabulary.tail_label_share) & (tail_count > 0)
    label = np.where(is_tail, 1 + tail_first + np.minimum(tail_rank, np.maximum(tail_count - 1, 0)), label)
    brand_line_empty = rng.random(n_items) < vocabulary.empty_brand_share

    sentences = rng.integers(1, MAX_SENTENCES + 1, size=n_items)
    # Three in four items have long descriptions that the summary's cut will truncate.
    sentences = np.where(rng.random(n_items) < 0.75, np.maximum(sentences, 7), sentences)
    opener = rng.integers(0, len(vocabulary.openers), size=(n_items, MAX_SENTENCES))
    own_phrase = world.phrase_first[category][:, None] + (
        rng.integers(0, 1 << 30, size=(n_items, MAX_SENTENCES)) % world.phrase_count[category][:, None]
    )
    generic_phrase = world.generic_phrase_first + rng.integers(
        0, len(vocabulary.generic_phrases), size=(n_items, MAX_SENTENCES)
    )
    phrase = np.where(rng.random((n_items, MAX_SENTENCES)) < 0.6, own_phrase, generic_phrase)
    closer = rng.integers(0, len(vocabulary.closers), size=(n_items, MAX_SENTENCES))
    sentence = world.sentence_index(opener, phrase, closer)
    sentence = np.where(np.arange(MAX_SENTENCES)[None, :] < sentences[:, None], sentence, len(world.sentences) - 1)
    boilerplate = rng.integers(0, len(vocabulary.boilerplate), size=(n_items, 2))

    draw = ItemDraw(
        category=category, product=product, accessory=accessory, has_host=has_host, brand_slot=brand_slot,
        host_brand_slot=host_brand_slot, spec=spec, variant=variant, material=material,
        condition=condition, pack=pack, partner=partner, label=label, brand_line_empty=brand_line_empty,
        adjective=rng.integers(0, len(vocabulary.adjectives), size=n_items),
        color=np.where(digital, 0, rng.integers(0, len(vocabulary.colors), size=n_items)),
        sentence=sentence, boilerplate=boilerplate,
        model_prefix=rng.integers(0, 26 * 26, size=n_items),
        model_number=rng.integers(100, 10_000, size=n_items),
        expected_log_price=np.zeros(n_items), price=np.zeros(n_items), weight=np.zeros(n_items),
    )
    _price(rng, world, draw)
    return draw


def _main_log_price(world: Tables, draw: ItemDraw, product: np.ndarray, brand_slot: np.ndarray) -> np.ndarray:
    """Log price of ``product`` made by the brand in ``brand_slot``, with the item's words."""
    category = draw.category
    material_log = np.where(draw.material >= 0, world.material_log[np.maximum(draw.material, 0)], 0.0)
    return (
        world.product_log_base[product]
        + world.brand_log_effect[category, brand_slot]
        + world.product_elasticity[product] * world.spec_log_ratio[draw.spec]
        + world.variant_log_effect[draw.variant, category]
        + world.product_material_sensitivity[product] * material_log
    )


def _price(rng: np.random.Generator, world: Tables, draw: ItemDraw) -> None:
    """Fill in the expected log price, the noisy listed price and the weight of every item."""
    vocabulary = world.vocabulary
    category, n_items = draw.category, len(draw)
    is_accessory = draw.accessory >= 0
    main = _main_log_price(world, draw, draw.product, draw.brand_slot)
    host = _main_log_price(world, draw, draw.product, draw.host_brand_slot)
    accessory = np.maximum(draw.accessory, 0)
    accessory_log = (
        world.accessory_log_base[accessory]
        + world.brand_log_effect[category, draw.brand_slot]
        + np.where(draw.has_host,
                   vocabulary.accessory_host_elasticity * (host - world.product_log_base[draw.product]), 0.0)
    )
    log_price = np.where(is_accessory, accessory_log, main)
    pack_count = world.pack_counts[draw.pack].astype(np.float64)
    log_price += (
        world.condition_scale[category] * world.condition_log[draw.condition]
        + world.pack_exponent[category] * np.log(pack_count)
        + np.log(vocabulary.price_scale)
    )
    partner = np.maximum(draw.partner, 0)
    partner_log = world.product_log_base[partner] + world.brand_log_effect[category, draw.brand_slot]
    with np.errstate(over="ignore"):
        bundle_price = np.exp(log_price) + np.exp(partner_log + np.log(vocabulary.price_scale))
    log_price = np.where(draw.partner >= 0, np.log(bundle_price), log_price)
    draw.expected_log_price = log_price

    noise = rng.normal(0.0, world.noise_sigma[category])
    outlier = rng.random(n_items) < vocabulary.outlier_share
    noise += np.where(outlier, rng.normal(vocabulary.outlier_shift, vocabulary.outlier_sigma, n_items), 0.0)
    draw.price = np.exp(log_price + noise)

    item_weight = np.where(is_accessory, world.accessory_weight[accessory], world.product_weight[draw.product])
    spec_factor = np.exp(0.5 * world.product_elasticity[draw.product] * world.spec_log_ratio[draw.spec])
    weight = item_weight * np.where(is_accessory, 1.0, spec_factor) * pack_count
    draw.weight = np.maximum(np.round(weight * rng.lognormal(0.0, 0.2, n_items), 2), 0.01)


def _relist_near_duplicates(rng: np.random.Generator, world: Tables, draw: ItemDraw) -> ItemDraw:
    """Turn a share of rows into relistings of other rows: the same product, brand, specs and
    model number, other description sentences and title words, and a different price."""
    vocabulary = world.vocabulary
    n_items = len(draw)
    is_duplicate = rng.random(n_items) < vocabulary.duplicate_share
    originals = np.flatnonzero(~is_duplicate)
    duplicates = np.flatnonzero(is_duplicate)
    source = np.arange(n_items)
    if len(originals) and len(duplicates):
        source[duplicates] = originals[rng.integers(0, len(originals), size=len(duplicates))]
    relisted = draw.take(source)
    # What a reseller rewrites: the marketing words, never the product itself.
    for name in ("adjective", "color", "sentence", "boilerplate", "label", "brand_line_empty"):
        setattr(relisted, name, getattr(draw, name))
    relisted.price = np.where(
        is_duplicate,
        relisted.price * rng.lognormal(0.0, vocabulary.duplicate_price_sigma, n_items),
        relisted.price,
    )
    return relisted


def _listed_price(rng: np.random.Generator, world: Tables, raw_price: np.ndarray) -> np.ndarray:
    """Prices as sellers write them: .99, whole dollars, .95, .49 or to the cent."""
    ending = rng.choice(len(world.ending_probs), size=len(raw_price), p=world.ending_probs)
    keeps_cents = ending == len(world.ending_cents)
    cents = world.ending_cents[np.minimum(ending, len(world.ending_cents) - 1)]
    whole = np.floor(raw_price)
    snapped = np.where(cents == 0.0, np.maximum(np.round(raw_price), 1.0), whole + cents)
    price = np.where(keeps_cents | (raw_price < 1.0) & (cents == 0.0), np.round(raw_price, 2), snapped)
    return np.clip(price, MIN_PRICE, MAX_PRICE)


def draw_items(n_items: int, seed: int | Sequence[int], world: Tables) -> ItemDraw:
    """Draw ``n_items`` items from one ``numpy.random.default_rng(seed)``, in a fixed order."""
    rng = np.random.default_rng(seed)
    kept: list[ItemDraw] = []
    have = 0
    while have < n_items:
        # About 3% of draws fall outside the price range; draw a little extra each round.
        batch = _draw_batch(rng, world, int((n_items - have) * 1.05) + 64)
        in_range = np.flatnonzero((batch.price >= MIN_PRICE) & (batch.price <= MAX_PRICE))
        kept.append(batch.take(in_range[: n_items - have]))
        have += min(len(in_range), n_items - have)
    draw = kept[0] if len(kept) == 1 else ItemDraw(
        **{f.name: np.concatenate([getattr(part, f.name) for part in kept]) for f in fields(ItemDraw)}
    )
    draw = _relist_near_duplicates(rng, world, draw)
    draw.price = _listed_price(rng, world, draw.price)
    return draw
