"""Write a draw's text columns with Arrow kernels (no per-row Python) in the Hub's layout."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from pricer.catalogue.generator import MAX_SENTENCES, ItemDraw
from pricer.catalogue.vocabulary import Tables

#: Column order of the frame, matching the Hub data plus ``id``.
CATALOGUE_COLUMNS: tuple[str, ...] = ("title", "category", "price", "full", "weight", "summary", "prompt", "id")

#: The course's prompt shape: question, blank line, summary, blank line, answer stem.
PROMPT_PREFIX: str = "What does this cost to the nearest dollar?\n\n"
PROMPT_SUFFIX: str = "\n\nPrice is $"

_LETTERS = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
_MODEL_PREFIXES = [a + b for a in _LETTERS for b in _LETTERS]


def _pick(vocabulary: list[str], indices: np.ndarray) -> pa.Array:
    """One text fragment per row: a vectorised ``vocabulary[indices]`` (-1 is the last entry)."""
    indices = np.where(indices < 0, len(vocabulary) + indices, indices)
    return pa.array(vocabulary, type=pa.large_string()).take(pa.array(indices))


def _concat(*parts: pa.Array | str) -> pa.Array:
    """Concatenate per-row fragments (arrays) and constant strings, row by row."""
    arrow_parts = [pa.scalar(part, pa.large_string()) if isinstance(part, str) else part for part in parts]
    return pc.binary_join_element_wise(*arrow_parts, pa.scalar("", pa.large_string()))


def _choose(condition: np.ndarray, when_true: pa.Array | str, when_false: pa.Array | str) -> pa.Array:
    def as_arrow(value: pa.Array | str) -> pa.Array | pa.Scalar:
        return pa.scalar(value, pa.large_string()) if isinstance(value, str) else value

    return pc.if_else(pa.array(condition), as_arrow(when_true), as_arrow(when_false))


def _numbers(values: np.ndarray) -> pa.Array:
    return pc.cast(pa.array(values), pa.large_string())


def _to_str_series(values: pa.Array) -> pd.Series:
    """Wrap an Arrow string array as pandas' default ``str`` dtype, without copying."""
    return pd.Series(pd.array(values, dtype="str"), copy=False)


def _with_none(words: list[str], template: str, none: str = "") -> list[str]:
    """``template`` applied to each non-empty word, ``none`` for empty ones, plus a last
    ``none`` entry for index -1 ("no such attribute")."""
    return [template.format(word) if word else none for word in words] + [none]


def _titles(world: Tables, draw: ItemDraw, brand: pa.Array, model: pa.Array) -> pa.Array:
    vocabulary = world.vocabulary
    is_accessory = draw.accessory >= 0
    host_brand = _pick(world.brand_names, world.category_brands[draw.category, draw.host_brand_slot])
    variant = _pick(_with_none(world.variant_names, "{} "), draw.variant)
    spec = _pick(_with_none(world.spec_text, "{} "), draw.spec)
    product = _pick(world.product_names, draw.product)
    condition = _pick(_with_none(world.condition_names, ", {}"), draw.condition)
    pack = _pick([f" (Pack of {n})" if n > 1 else "" for n in world.pack_counts], draw.pack)
    adjective = _pick(vocabulary.adjectives, draw.adjective)
    partner = _pick(world.product_names + [""], draw.partner)
    bundle = _choose(draw.partner >= 0, _concat(" + ", partner, " Bundle"), "")
    main = _concat(
        brand, " ", variant, adjective, " ", _pick(_with_none(world.material_names, "{} "), draw.material),
        spec, product, condition, _pick(_with_none(vocabulary.colors, ", {}"), draw.color), " - ", model,
        pack, bundle,
    )
    made_for = _choose(draw.has_host, _concat(" for ", host_brand, " ", variant, spec, product), "")
    accessory = _concat(
        brand, " ", adjective, " ", _pick(world.accessory_names + [""], draw.accessory), made_for, condition, pack,
        " - ", model,
    )
    return _choose(is_accessory, accessory, main)


def _description(world: Tables, draw: ItemDraw, brand: pa.Array) -> pa.Array:
    vocabulary = world.vocabulary
    is_accessory = draw.accessory >= 0
    product_lower = _pick([name.lower() for name in world.product_names], draw.product)
    material = _pick(_with_none([m.lower() for m in world.material_names], " in {}"), draw.material)
    accessory_lower = _pick([name.lower() for name in world.accessory_names] + [""], draw.accessory)
    compatible = _concat(
        _pick(_MODEL_PREFIXES, (draw.model_prefix * 7 + 3) % len(_MODEL_PREFIXES)), "-",
        _numbers((draw.model_number * 13 + 7) % 9000 + 1000),
    )
    intro = _choose(
        is_accessory,
        _concat(
            "This ", accessory_lower,
            _choose(draw.has_host, _concat(" is made for the ", product_lower), " is a universal replacement part"),
            ". Also fits models ", compatible, ". ",
        ),
        _concat("Meet the ", brand, " ", product_lower, material, ". "),
    )
    parts: list[pa.Array | str] = [intro]
    sentences = pa.array(world.sentences, type=pa.large_string())
    parts += [sentences.take(pa.array(draw.sentence[:, slot])) for slot in range(MAX_SENTENCES)]
    parts += [_pick(vocabulary.boilerplate, draw.boilerplate[:, 0]), " ",
              _pick(vocabulary.boilerplate, draw.boilerplate[:, 1])]
    return _concat(*parts)


def _details(world: Tables, draw: ItemDraw, model: pa.Array) -> pa.Array:
    spec_detail = [f"{label}: {text}; " if text else ""
                   for label, text in zip(world.spec_label, world.spec_text, strict=False)]
    return _concat(
        "Model: ", model, "; Item weight: ", _numbers(draw.weight), " pounds; ",
        _pick(spec_detail, draw.spec),
        _pick(_with_none(world.material_names, "Material: {}; "), draw.material),
        _pick([f"Condition: {c or 'New'}" for c in world.condition_names], draw.condition),
        _pick([f"; Package quantity: {n}" if n > 1 else "" for n in world.pack_counts], draw.pack),
    )


def render(world: Tables, draw: ItemDraw) -> pd.DataFrame:
    """The frame for a draw: the Hub's columns, text assembled column-wise."""
    brand = _pick(world.brand_names, world.category_brands[draw.category, draw.brand_slot])
    model = _concat(_pick(_MODEL_PREFIXES, draw.model_prefix), "-", _numbers(draw.model_number))
    labels = world.category_names + world.tail_labels + [""]
    label_index = np.where(draw.label == 0, draw.category, len(world.category_names) + draw.label - 1)
    category = _pick(labels, np.where(draw.label < 0, len(labels) - 1, label_index))

    title = _titles(world, draw, brand, model)
    description = _description(world, draw, brand)
    details = _details(world, draw, model)
    full = _concat(title, "\n", description, "\n", details)
    summary = _concat(
        "Title: ", title, "\nCategory: ", category, "\nBrand: ", _choose(draw.brand_line_empty, "", brand),
        "\nDescription: ", description, "\nDetails: ", details,
    )
    del description, details  # free the intermediate columns before the largest ones
    # The Hub's curation cut long texts; the cut falls mid-word, as it did there.
    summary = pc.utf8_slice_codeunits(summary, 0, world.vocabulary.summary_max_chars)
    prompt = _concat(PROMPT_PREFIX, summary, PROMPT_SUFFIX)
    return pd.DataFrame(
        {
            "title": _to_str_series(title),
            "category": _to_str_series(category),
            "price": pd.Series(draw.price, dtype=np.float64),
            "full": _to_str_series(full),
            "weight": pd.Series(draw.weight, dtype=np.float64),
            "summary": _to_str_series(summary),
            "prompt": _to_str_series(prompt),
            "id": pd.Series(np.arange(len(draw), dtype=np.int64)),
        },
        columns=list(CATALOGUE_COLUMNS),
    )
