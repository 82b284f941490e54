"""Embedded product catalogue: a synthetic stand-in for the Hub's ``items_lite`` data.

The pipeline's real data source (the Hugging Face datasets ``ed-donner/items_lite`` /
``items_full``) is not always reachable, so the project ships a generator that produces
rows with the same columns and the same text shape. Its point is not realism for its own
sake but a *learnable* task: every price is a product of multiplicative effects, and each
effect is announced by words in the text (product type, brand, material, a numeric spec,
pack size, condition, model variant). A bag-of-words model can therefore recover most of
the price, while log-normal noise keeps any model from being perfect. Filler words
(adjectives, colors, model numbers, boilerplate sentences) carry no price signal, so a
model also has to learn what to ignore.

Everything is drawn with one ``numpy.random.default_rng(seed)`` in a fixed order, and
strings are assembled column-wise with Arrow compute kernels, which keeps 800,000 rows at
about two seconds and a ~1.1 GB frame. The module does no I/O.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

__all__ = [
    "CATALOGUE_COLUMNS",
    "MAX_PRICE",
    "MIN_PRICE",
    "PROMPT_PREFIX",
    "PROMPT_SUFFIX",
    "generate_catalogue",
]

# --------------------------------------------------------------------------------------
# Output contract
# --------------------------------------------------------------------------------------

#: Column order of the frame, matching the Hub data plus ``id``.
CATALOGUE_COLUMNS: tuple[str, ...] = (
    "title",
    "category",
    "price",
    "full",
    "weight",
    "summary",
    "prompt",
    "id",
)

#: Price bounds of the Hub data (items outside them were dropped by its curation).
MIN_PRICE: float = 0.50
MAX_PRICE: float = 999.49

#: The course's prompt shape: question, blank line, summary, blank line, answer stem.
PROMPT_PREFIX: str = "What does this cost to the nearest dollar?\n\n"
PROMPT_SUFFIX: str = "\n\nPrice is $"

#: Global multiplier applied to every price, used to centre the median near $35.
PRICE_SCALE: float = 0.60

#: Sigma of the multiplicative log-normal noise: the part of a price no text explains.
NOISE_SIGMA: float = 0.30

#: Share of prices that get "charm" pricing (ending in .99), as real listings often do.
CHARM_PRICE_SHARE: float = 0.5

# --------------------------------------------------------------------------------------
# Vocabularies. Each tuple is (text, price multiplier, probability) unless noted.
# --------------------------------------------------------------------------------------


class SpecKind(NamedTuple):
    """A numeric specification whose value moves price monotonically.

    The multiplier is ``(value / geometric_mean(levels)) ** elasticity``, so a product's
    base price is its price at a middling spec, and bigger numbers always cost more.
    Formats write the number glued to its unit ("32oz", "1200-Watt") where possible so a
    tokenizer keeps the number (sklearn drops one-character tokens such as "4").
    """

    label: str
    template: str
    levels: tuple[int, ...]
    elasticity: float


#: Spec kinds by key; "none" is a single empty level with no effect.
SPEC_KINDS: dict[str, SpecKind] = {
    "none": SpecKind("", "", (1,), 0.0),
    "watts": SpecKind("Power", "{}-Watt", (300, 600, 900, 1200, 1500, 1800), 0.45),
    "output_watts": SpecKind("Output", "{}W", (10, 20, 30, 45, 65, 100, 160), 0.40),
    "storage_gb": SpecKind("Capacity", "{}GB", (16, 32, 64, 128, 256, 512), 0.30),
    "screen_in": SpecKind("Screen size", "{}in", (15, 17, 22, 24, 27, 32, 43), 1.10),
    "size_inch": SpecKind("Size", "{}-Inch", (10, 12, 14, 16, 18, 20), 0.80),
    "volts": SpecKind("Voltage", "{}V", (12, 18, 20, 40, 60), 0.50),
    "battery_mah": SpecKind("Battery", "{}mAh", (1000, 2500, 5000, 10000, 20000), 0.30),
    "capacity_oz": SpecKind("Capacity", "{}oz", (12, 16, 20, 24, 32, 40, 64), 0.40),
    "pieces": SpecKind("Pieces", "{}-Piece", (10, 25, 40, 65, 100, 150, 250), 0.40),
    "length_ft": SpecKind("Length", "{}ft", (10, 25, 50, 75, 100), 0.45),
    "months": SpecKind("Term", "{}-Month Subscription", (12, 24, 36, 48), 0.60),
    "keys": SpecKind("Keys", "{}-Key", (25, 37, 49, 61, 76, 88), 0.70),
    "count": SpecKind("Count", "{} Count", (30, 60, 90, 120, 180, 240), 0.45),
    "bag_lb": SpecKind("Bag size", "{}lb", (10, 15, 20, 30, 40), 0.60),
    "volume_ml": SpecKind("Volume", "{}ml", (15, 30, 50, 100, 200), 0.45),
    "liters": SpecKind("Volume", "{}L", (10, 20, 30, 45, 65), 0.50),
    "sheets": SpecKind("Sheets", "{}-Sheet", (100, 250, 500, 1000, 2500), 0.45),
    "btu": SpecKind("Cooling", "{} BTU", (5000, 8000, 10000, 12000, 15000, 18000), 0.80),
}


class Product(NamedTuple):
    """A product type: its noun is the strongest price word in the text."""

    noun: str
    base_price: float  # dollars at a mid-tier brand, plain material, middling spec
    base_weight_lb: float
    spec: str  # key into SPEC_KINDS
    has_material: bool  # whether a material word is written (and priced)


#: Categories (as the Hub names them), their share of items, and their product types.
CATEGORIES: dict[str, tuple[float, tuple[Product, ...]]] = {
    "Electronics": (0.12, (
        Product("Bluetooth Speaker", 45, 1.5, "output_watts", True),
        Product("Soundbar", 120, 6.0, "output_watts", False),
        Product("Computer Monitor", 180, 12.0, "screen_in", False),
        Product("Portable SSD", 80, 0.3, "storage_gb", True),
        Product("Wireless Earbuds", 50, 0.2, "none", False),
        Product("Streaming Media Player", 40, 0.5, "none", False),
        Product("USB Flash Drive", 12, 0.05, "storage_gb", True),
        Product("HDMI Cable", 9, 0.4, "length_ft", False),
    )),
    "Automotive": (0.09, (
        Product("Floor Mat Set", 45, 8.0, "none", False),
        Product("Socket Wrench Set", 60, 9.0, "pieces", True),
        Product("Jump Starter", 90, 3.0, "battery_mah", False),
        Product("Tire Inflator", 40, 2.5, "volts", False),
        Product("Dash Camera", 70, 0.5, "storage_gb", False),
        Product("Brake Pad Kit", 55, 6.0, "none", False),
        Product("Tow Strap", 25, 3.0, "length_ft", False),
    )),
    "Appliances": (0.10, (
        Product("Countertop Blender", 70, 8.0, "watts", True),
        Product("Microwave Oven", 130, 30.0, "watts", True),
        Product("Window Air Conditioner", 300, 55.0, "btu", False),
        Product("Space Heater", 50, 6.0, "watts", True),
        Product("Water Filter Cartridge", 30, 1.0, "none", False),
        Product("Countertop Ice Maker", 150, 22.0, "none", True),
        Product("Range Hood", 220, 25.0, "none", True),
    )),
    "Tools & Home Improvement": (0.10, (
        Product("Cordless Drill", 90, 4.0, "volts", False),
        Product("Impact Driver", 110, 3.5, "volts", False),
        Product("Circular Saw", 120, 10.0, "volts", False),
        Product("Screwdriver Set", 25, 2.0, "pieces", True),
        Product("Tape Measure", 15, 0.8, "length_ft", True),
        Product("LED Work Light", 35, 3.0, "output_watts", True),
        Product("Garden Hose", 35, 8.0, "length_ft", False),
    )),
    "Musical Instruments": (0.08, (
        Product("Digital Piano", 450, 40.0, "keys", False),
        Product("MIDI Keyboard Controller", 120, 6.0, "keys", False),
        Product("Guitar Amplifier", 150, 20.0, "output_watts", False),
        Product("Crash Cymbal", 110, 3.0, "size_inch", False),
        Product("Guitar Strings", 9, 0.1, "none", False),
        Product("Microphone Stand", 30, 6.0, "none", True),
        Product("Snare Drum", 180, 12.0, "size_inch", True),
    )),
    "Toys & Games": (0.07, (
        Product("Building Block Set", 45, 2.0, "pieces", False),
        Product("Jigsaw Puzzle", 18, 1.5, "pieces", False),
        Product("Remote Control Car", 55, 3.0, "none", True),
        Product("Plush Toy", 15, 0.6, "size_inch", False),
        Product("Board Game", 28, 2.5, "none", False),
        Product("Camera Drone", 90, 1.0, "none", False),
    )),
    "Software": (0.07, (
        Product("Antivirus Suite", 40, 0.1, "months", False),
        Product("Photo Editing Software", 70, 0.1, "months", False),
        Product("Office Productivity Suite", 100, 0.1, "months", False),
        Product("Tax Preparation Software", 50, 0.1, "none", False),
        Product("Video Editing Software", 90, 0.1, "months", False),
        Product("Language Learning Course", 120, 0.1, "months", False),
    )),
    "Office Products": (0.06, (
        Product("Copy Paper", 30, 20.0, "sheets", False),
        Product("Sticky Notes", 12, 1.0, "sheets", False),
        Product("Label Printer", 70, 3.0, "none", False),
        Product("Paper Shredder", 90, 15.0, "none", False),
        Product("Desk Organizer", 25, 2.0, "none", True),
        Product("Gel Pens", 12, 0.5, "count", False),
        Product("Ergonomic Office Chair", 200, 40.0, "none", True),
    )),
    "Cell Phones & Accessories": (0.07, (
        Product("Phone Case", 15, 0.2, "none", True),
        Product("Wall Charger", 20, 0.3, "output_watts", False),
        Product("Power Bank", 35, 0.8, "battery_mah", True),
        Product("Screen Protector", 10, 0.1, "none", False),
        Product("Car Phone Mount", 18, 0.4, "none", True),
        Product("MicroSD Memory Card", 20, 0.02, "storage_gb", False),
        Product("Unlocked Smartphone", 300, 0.5, "storage_gb", False),
    )),
    "Sports & Outdoors": (0.06, (
        Product("Hiking Backpack", 60, 2.5, "liters", False),
        Product("Camping Tent", 130, 8.0, "none", True),
        Product("Insulated Water Bottle", 25, 1.0, "capacity_oz", True),
        Product("Trekking Poles", 40, 1.2, "none", True),
        Product("Yoga Mat", 25, 3.0, "none", False),
        Product("Adjustable Dumbbell", 150, 40.0, "none", True),
    )),
    "Home & Kitchen": (0.08, (
        Product("Chef Knife", 45, 0.6, "none", True),
        Product("Cookware Set", 150, 18.0, "pieces", True),
        Product("Drip Coffee Maker", 60, 7.0, "none", True),
        Product("Travel Mug", 20, 0.8, "capacity_oz", True),
        Product("Bath Towel Set", 35, 4.0, "pieces", False),
        Product("Memory Foam Pillow", 40, 3.0, "none", False),
        Product("Food Storage Containers", 25, 3.0, "pieces", False),
    )),
    "Beauty": (0.04, (
        Product("Hair Dryer", 50, 1.5, "watts", False),
        Product("Facial Serum", 25, 0.2, "volume_ml", False),
        Product("Makeup Brush Set", 20, 0.5, "pieces", False),
        Product("Eau de Parfum", 60, 0.6, "volume_ml", False),
        Product("Electric Shaver", 70, 0.8, "none", False),
        Product("Nail Polish", 9, 0.1, "volume_ml", False),
    )),
    "Pet Supplies": (0.03, (
        Product("Dry Dog Food", 45, 30.0, "bag_lb", False),
        Product("Clumping Cat Litter", 20, 25.0, "bag_lb", False),
        Product("Orthopedic Dog Bed", 45, 5.0, "none", False),
        Product("Aquarium Filter", 30, 2.0, "none", False),
        Product("Cat Tree", 80, 30.0, "none", False),
        Product("Automatic Pet Feeder", 60, 4.0, "none", True),
    )),
    "Health & Household": (0.05, (
        Product("Vitamin D3 Supplement", 15, 0.3, "count", False),
        Product("Daily Multivitamin", 20, 0.4, "count", False),
        Product("Blood Pressure Monitor", 40, 1.0, "none", False),
        Product("Laundry Detergent Pods", 20, 4.0, "count", False),
        Product("Electric Toothbrush", 60, 0.8, "none", False),
        Product("Digital Thermometer", 15, 0.2, "none", False),
    )),
    "Industrial & Scientific": (0.04, (
        Product("Nitrile Gloves", 20, 2.0, "count", False),
        Product("Digital Caliper", 30, 0.6, "none", True),
        Product("Lab Beaker Set", 30, 2.0, "pieces", False),
        Product("Digital Multimeter", 45, 1.0, "none", False),
        Product("PLA Printer Filament", 25, 2.2, "none", False),
        Product("Soldering Station", 70, 4.0, "output_watts", False),
    )),
}

#: Categories whose items are not physical: no material, pack size or condition words.
DIGITAL_CATEGORIES: frozenset[str] = frozenset({"Software"})

#: Products dearer or heavier than this are never sold in multi-packs (nobody sells 12
#: pianos or 24 sacks of dog food in one listing).
PACKABLE_MAX_BASE_PRICE: float = 50.0
PACKABLE_MAX_BASE_WEIGHT_LB: float = 5.0

#: Brand tiers: invented names, price multiplier, share of items.
BRAND_TIERS: tuple[tuple[tuple[str, ...], float, float], ...] = (
    (("Valuzo", "Brisko", "Tindle", "Corvo", "Plimsy", "Nexbit", "Quikko", "Humbly",
      "Dorrow", "Ebbit"), 0.60, 0.35),
    (("Marlowe & Finch", "Stellan", "Aderro", "Kestrel Works", "Ravelin", "Ostwyn",
      "Carraway", "Tamsin Labs", "Halvard", "Brightmoor"), 1.00, 0.45),
    (("Aurelian", "Vantorre", "Solenne", "Helvaris", "Obsidia", "Castellane",
      "Ironvale", "Lumivor", "Sable & Crane", "Veridane"), 1.80, 0.20),
)

#: Materials (only for products that name one), cheapest to dearest.
MATERIALS: tuple[tuple[str, float, float], ...] = (
    ("Plastic", 0.75, 0.35),
    ("Bamboo", 0.90, 0.10),
    ("Aluminum", 1.15, 0.25),
    ("Stainless Steel", 1.35, 0.18),
    ("Carbon Fiber", 1.80, 0.07),
    ("Titanium", 2.10, 0.05),
)

#: Model variants written after the brand; "" is the plain model.
VARIANTS: tuple[tuple[str, float, float], ...] = (
    ("", 1.00, 0.45),
    ("Mini", 0.80, 0.10),
    ("Lite", 0.85, 0.10),
    ("Plus", 1.15, 0.12),
    ("Pro", 1.30, 0.15),
    ("Max", 1.50, 0.08),
)

#: Condition / grade; "" is an ordinary new item.
CONDITIONS: tuple[tuple[str, float, float], ...] = (
    ("", 1.00, 0.76),
    ("Refurbished", 0.65, 0.06),
    ("Open Box", 0.85, 0.05),
    ("Professional-Grade", 1.40, 0.09),
    ("Commercial-Grade", 1.70, 0.04),
)

#: Units per listing and their share among packable products. Price grows less than
#: linearly with count (bulk discount): multiplier = count ** PACK_EXPONENT.
PACK_COUNTS: tuple[tuple[int, float], ...] = (
    (1, 0.70), (2, 0.09), (4, 0.07), (6, 0.05), (12, 0.06), (24, 0.03),
)
PACK_EXPONENT: float = 0.80

#: Price-neutral words: title adjectives and colors.
ADJECTIVES: tuple[str, ...] = (
    "Compact", "Everyday", "Modern", "Classic", "Sleek", "Durable", "Lightweight",
    "Versatile", "Essential", "Portable", "Ergonomic", "Reliable", "Minimalist",
    "Heavy Duty", "Easy-Use", "Universal", "Smart", "Upgraded", "Foldable", "Quiet",
)
COLORS: tuple[str, ...] = (
    "", "", "", "Black", "White", "Slate Gray", "Navy Blue", "Forest Green", "Crimson",
    "Sand Beige", "Charcoal", "Silver", "Teal", "Matte Black",
)

#: Price-neutral boilerplate sentences for descriptions and details.
DESCRIPTION_FILLERS: tuple[str, ...] = (
    "Designed for everyday use at home, at work or on the go.",
    "Easy to set up straight out of the package with no extra tools required.",
    "A thoughtful gift for friends, family and colleagues.",
    "Simple controls make it easy for anyone to get started.",
    "Wipe clean with a damp cloth to keep it looking like new.",
    "Built to fit neatly on shelves, desks and countertops.",
    "Tested by our team to make sure it meets our quality standards.",
    "Its clean lines suit both traditional and contemporary spaces.",
    "Our customer care team is happy to help with any questions.",
    "Folds or stores away quickly when you need the space.",
    "Thoughtful details make daily routines a little smoother.",
    "Pairs well with the rest of our product family.",
    "Made to handle regular use without fuss.",
    "Clear instructions are included in the package.",
    "A comfortable choice for beginners and experienced users alike.",
    "Arrives in recyclable, frustration-free packaging.",
    "Compatible with most standard accessories.",
    "Each unit is checked before it leaves the warehouse.",
    "The understated finish blends into any setting.",
    "Quick to clean, quick to store, quick to use again.",
)
DETAIL_FILLERS: tuple[str, ...] = (
    "Ships in recyclable packaging.",
    "Includes a quick start guide.",
    "Backed by a limited manufacturer warranty.",
    "Country of origin: imported.",
    "Customer support available by email.",
    "Please check measurements before ordering.",
    "Colors may vary slightly from the photos.",
    "Batteries and accessories sold separately where applicable.",
)

#: Short letter pairs used as model-number prefixes (price-neutral tokens).
_MODEL_PREFIXES: tuple[str, ...] = tuple(
    a + b for a in "ABCDEFGHJKLMNPRSTVWXZ" for b in "ABCDEFGHJKLMNPRSTVWXZ"
)

# --------------------------------------------------------------------------------------
# Flattened lookup tables, built once at import so generation is pure array indexing.
# --------------------------------------------------------------------------------------


def _flatten_products() -> tuple[list[str], list[str], np.ndarray, np.ndarray, np.ndarray]:
    """Lay the nested category table out as parallel arrays indexed by product id."""
    categories: list[str] = []
    product_names: list[str] = []
    product_category: list[int] = []
    category_share: list[float] = []
    for category_index, (category, (share, products)) in enumerate(CATEGORIES.items()):
        categories.append(category)
        category_share.append(share)
        for product in products:
            product_names.append(product.noun)
            product_category.append(category_index)
    shares = np.asarray(category_share, dtype=np.float64)
    return (
        categories,
        product_names,
        np.asarray(product_category, dtype=np.int64),
        shares / shares.sum(),
        np.asarray([len(p) for _, p in CATEGORIES.values()], dtype=np.int64),
    )


(
    _CATEGORY_NAMES,
    _PRODUCT_NAMES,
    _PRODUCT_CATEGORY,
    _CATEGORY_PROBS,
    _CATEGORY_SIZES,
) = _flatten_products()
_CATEGORY_FIRST_PRODUCT = np.concatenate(([0], np.cumsum(_CATEGORY_SIZES)[:-1]))
_ALL_PRODUCTS: tuple[Product, ...] = tuple(p for _, ps in CATEGORIES.values() for p in ps)
_PRODUCT_BASE_PRICE = np.asarray([p.base_price for p in _ALL_PRODUCTS], dtype=np.float64)
_PRODUCT_BASE_WEIGHT = np.asarray([p.base_weight_lb for p in _ALL_PRODUCTS], dtype=np.float64)
_PRODUCT_HAS_MATERIAL = np.asarray([p.has_material for p in _ALL_PRODUCTS], dtype=bool)
_PRODUCT_IS_DIGITAL = np.asarray(
    [_CATEGORY_NAMES[c] in DIGITAL_CATEGORIES for c in _PRODUCT_CATEGORY], dtype=bool
)
_PRODUCT_PACKABLE = (
    (_PRODUCT_BASE_PRICE <= PACKABLE_MAX_BASE_PRICE)
    & (_PRODUCT_BASE_WEIGHT <= PACKABLE_MAX_BASE_WEIGHT_LB)
    & ~_PRODUCT_IS_DIGITAL
)

# Spec kinds flattened: every (kind, level) pair gets one row in a flat vocabulary.
_SPEC_KEYS: tuple[str, ...] = tuple(SPEC_KINDS)
_PRODUCT_SPEC_KIND = np.asarray([_SPEC_KEYS.index(p.spec) for p in _ALL_PRODUCTS], np.int64)
_SPEC_LEVEL_COUNT = np.asarray([len(SPEC_KINDS[k].levels) for k in _SPEC_KEYS], np.int64)
_SPEC_FIRST_LEVEL = np.concatenate(([0], np.cumsum(_SPEC_LEVEL_COUNT)[:-1]))


def _flatten_specs() -> tuple[list[str], list[str], np.ndarray]:
    """Give every (spec kind, level) pair one row: title text, details text, multiplier."""
    title_text: list[str] = []
    detail_text: list[str] = []
    multipliers: list[float] = []
    for key in _SPEC_KEYS:
        kind = SPEC_KINDS[key]
        centre = float(np.exp(np.mean(np.log(kind.levels))))
        for level in kind.levels:
            text = kind.template.format(level) if kind.template else ""
            title_text.append(f"{text} " if text else "")
            detail_text.append(f"{kind.label}: {text}; " if text else "")
            multipliers.append((level / centre) ** kind.elasticity)
    return title_text, detail_text, np.asarray(multipliers, dtype=np.float64)


_SPEC_TITLE_TEXT, _SPEC_DETAIL_TEXT, _SPEC_MULTIPLIER = _flatten_specs()

_BRAND_NAMES: list[str] = [name for names, _, _ in BRAND_TIERS for name in names]
_BRAND_MULTIPLIER = np.asarray(
    [mult for names, mult, _ in BRAND_TIERS for _ in names], dtype=np.float64
)
_BRAND_PROBS = np.asarray(
    [share / len(names) for names, _, share in BRAND_TIERS for _ in names], dtype=np.float64
)
_BRAND_PROBS /= _BRAND_PROBS.sum()


def _weighted_table(
    table: tuple[tuple[str, float, float], ...],
) -> tuple[list[str], np.ndarray, np.ndarray]:
    """Split a (text, multiplier, probability) table into text, multipliers, probabilities."""
    texts = [text for text, _, _ in table]
    multipliers = np.asarray([mult for _, mult, _ in table], dtype=np.float64)
    probs = np.asarray([prob for _, _, prob in table], dtype=np.float64)
    return texts, multipliers, probs / probs.sum()


_MATERIAL_NAMES, _MATERIAL_MULTIPLIER, _MATERIAL_PROBS = _weighted_table(MATERIALS)
_VARIANT_NAMES, _VARIANT_MULTIPLIER, _VARIANT_PROBS = _weighted_table(VARIANTS)
_CONDITION_NAMES, _CONDITION_MULTIPLIER, _CONDITION_PROBS = _weighted_table(CONDITIONS)
_PACK_VALUES = np.asarray([count for count, _ in PACK_COUNTS], dtype=np.int64)
_PACK_PROBS = np.asarray([prob for _, prob in PACK_COUNTS], dtype=np.float64)
_PACK_PROBS /= _PACK_PROBS.sum()

# Text fragments carry their own separators so that an absent attribute ("" entry)
# leaves no double spaces behind when the fragments are concatenated.
_NO_MATERIAL = len(_MATERIAL_NAMES)  # index of the appended "" entry below
_MATERIAL_TITLE_TEXT = [f"{m} " for m in _MATERIAL_NAMES] + [""]
_MATERIAL_DESCRIPTION_TEXT = [f" is made of {m.lower()}." for m in _MATERIAL_NAMES] + [
    " keeps things simple."
]
_MATERIAL_DETAIL_TEXT = [f"Material: {m}; " for m in _MATERIAL_NAMES] + [""]
_MATERIAL_MULTIPLIER_WITH_NONE = np.append(_MATERIAL_MULTIPLIER, 1.0)
_VARIANT_TITLE_TEXT = [f"{v} " if v else "" for v in _VARIANT_NAMES]
_CONDITION_TITLE_TEXT = [f", {c}" if c else "" for c in _CONDITION_NAMES]
_CONDITION_DETAIL_TEXT = [f"Condition: {c or 'New'}; " for c in _CONDITION_NAMES]
_COLOR_TITLE_TEXT = [f", {c}" if c else "" for c in COLORS]
_PACK_TITLE_TEXT = [f" (Pack of {n})" if n > 1 else "" for n in _PACK_VALUES]
_PACK_DETAIL_TEXT = [f"Package quantity: {n}pk; " if n > 1 else "" for n in _PACK_VALUES]
_PRODUCT_LOWER = [name.lower() for name in _PRODUCT_NAMES]


# --------------------------------------------------------------------------------------
# Sampling
# --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class CatalogueDraw:
    """Every random choice for a catalogue, as index arrays into the tables above.

    Kept separate from the rendered frame so that checks (and the docs' figures) can use
    ``expected_price``, the noiseless price that an ideal text-only model would predict.
    """

    product: np.ndarray
    brand: np.ndarray
    material: np.ndarray
    spec: np.ndarray
    variant: np.ndarray
    condition: np.ndarray
    pack: np.ndarray
    adjective: np.ndarray
    color: np.ndarray
    description_filler_a: np.ndarray
    description_filler_b: np.ndarray
    detail_filler: np.ndarray
    model_prefix: np.ndarray
    model_number: np.ndarray
    expected_price: np.ndarray
    price: np.ndarray
    weight: np.ndarray


def _draw(n_items: int, seed: int) -> CatalogueDraw:
    """Draw all random choices for ``n_items`` rows, vectorised, in a fixed order."""
    rng = np.random.default_rng(seed)

    category = rng.choice(len(_CATEGORY_NAMES), size=n_items, p=_CATEGORY_PROBS)
    product = _CATEGORY_FIRST_PRODUCT[category] + rng.integers(0, _CATEGORY_SIZES[category])

    brand = rng.choice(len(_BRAND_NAMES), size=n_items, p=_BRAND_PROBS)

    material = rng.choice(len(_MATERIAL_NAMES), size=n_items, p=_MATERIAL_PROBS)
    material = np.where(_PRODUCT_HAS_MATERIAL[product], material, _NO_MATERIAL)

    spec_kind = _PRODUCT_SPEC_KIND[product]
    spec = _SPEC_FIRST_LEVEL[spec_kind] + rng.integers(0, _SPEC_LEVEL_COUNT[spec_kind])

    variant = rng.choice(len(_VARIANT_NAMES), size=n_items, p=_VARIANT_PROBS)

    is_digital = _PRODUCT_IS_DIGITAL[product]
    condition = rng.choice(len(_CONDITION_NAMES), size=n_items, p=_CONDITION_PROBS)
    condition = np.where(is_digital, 0, condition)

    pack = rng.choice(len(_PACK_VALUES), size=n_items, p=_PACK_PROBS)
    pack = np.where(_PRODUCT_PACKABLE[product], pack, 0)
    pack_count = _PACK_VALUES[pack]

    adjective = rng.integers(0, len(ADJECTIVES), size=n_items)
    color = rng.integers(0, len(COLORS), size=n_items)
    color = np.where(is_digital, 0, color)
    description_filler_a = rng.integers(0, len(DESCRIPTION_FILLERS), size=n_items)
    # Offset by 1..len-1 so the two filler sentences of one item always differ.
    description_filler_b = (
        description_filler_a + rng.integers(1, len(DESCRIPTION_FILLERS), size=n_items)
    ) % len(DESCRIPTION_FILLERS)
    detail_filler = rng.integers(0, len(DETAIL_FILLERS), size=n_items)
    model_prefix = rng.integers(0, len(_MODEL_PREFIXES), size=n_items)
    model_number = rng.integers(100, 10_000, size=n_items)

    spec_multiplier = _SPEC_MULTIPLIER[spec]
    expected_price = (
        PRICE_SCALE
        * _PRODUCT_BASE_PRICE[product]
        * _BRAND_MULTIPLIER[brand]
        * _MATERIAL_MULTIPLIER_WITH_NONE[material]
        * spec_multiplier
        * _VARIANT_MULTIPLIER[variant]
        * _CONDITION_MULTIPLIER[condition]
        * pack_count.astype(np.float64) ** PACK_EXPONENT
    )
    noise = rng.lognormal(mean=0.0, sigma=NOISE_SIGMA, size=n_items)
    raw_price = expected_price * noise
    charm = rng.random(n_items) < CHARM_PRICE_SHARE
    price = np.where(charm & (raw_price >= 1.0), np.floor(raw_price) + 0.99, np.round(raw_price, 2))
    price = np.clip(price, MIN_PRICE, MAX_PRICE)

    weight_noise = rng.lognormal(mean=0.0, sigma=0.2, size=n_items)
    weight = (
        _PRODUCT_BASE_WEIGHT[product] * np.sqrt(spec_multiplier) * pack_count * weight_noise
    )
    weight = np.maximum(np.round(weight, 2), 0.01)

    return CatalogueDraw(
        product=product,
        brand=brand,
        material=material,
        spec=spec,
        variant=variant,
        condition=condition,
        pack=pack,
        adjective=adjective,
        color=color,
        description_filler_a=description_filler_a,
        description_filler_b=description_filler_b,
        detail_filler=detail_filler,
        model_prefix=model_prefix,
        model_number=model_number,
        expected_price=np.clip(expected_price, MIN_PRICE, MAX_PRICE),
        price=price.astype(np.float64),
        weight=weight.astype(np.float64),
    )


# --------------------------------------------------------------------------------------
# Rendering: column-wise string assembly with Arrow kernels (no per-row Python).
# --------------------------------------------------------------------------------------


def _pick(vocabulary: list[str] | tuple[str, ...], indices: np.ndarray) -> pa.Array:
    """Look up one text fragment per row: a vectorised ``vocabulary[indices]``."""
    return pa.array(vocabulary, type=pa.large_string()).take(pa.array(indices))


def _concat(*parts: pa.Array | str) -> pa.Array:
    """Concatenate per-row fragments (arrays) and constant strings, row by row."""
    arrow_parts = [
        pa.scalar(part, pa.large_string()) if isinstance(part, str) else part
        for part in parts
    ]
    return pc.binary_join_element_wise(*arrow_parts, pa.scalar("", pa.large_string()))


def _to_str_series(values: pa.Array) -> pd.Series:
    """Wrap an Arrow string array as pandas' default ``str`` dtype, without copying."""
    return pd.Series(pd.array(values, dtype="str"), copy=False)


def _render(draw: CatalogueDraw) -> pd.DataFrame:
    """Write the text columns for a draw and assemble the frame in the Hub's layout."""
    n_items = len(draw.product)
    category_index = _PRODUCT_CATEGORY[draw.product]
    category = _pick(_CATEGORY_NAMES, category_index)
    brand = _pick(_BRAND_NAMES, draw.brand)
    product = _pick(_PRODUCT_NAMES, draw.product)
    model = _concat(
        _pick(_MODEL_PREFIXES, draw.model_prefix),
        "-",
        pc.cast(pa.array(draw.model_number), pa.large_string()),
    )

    title = _concat(
        brand, " ",
        _pick(_VARIANT_TITLE_TEXT, draw.variant),
        _pick(ADJECTIVES, draw.adjective), " ",
        _pick(_MATERIAL_TITLE_TEXT, draw.material),
        _pick(_SPEC_TITLE_TEXT, draw.spec),
        product,
        _pick(_CONDITION_TITLE_TEXT, draw.condition),
        _pick(_COLOR_TITLE_TEXT, draw.color),
        " - ", model,
        _pick(_PACK_TITLE_TEXT, draw.pack),
    )
    description = _concat(
        "This ", _pick(_PRODUCT_LOWER, draw.product), " by ", brand,
        _pick(_MATERIAL_DESCRIPTION_TEXT, draw.material), " ",
        _pick(DESCRIPTION_FILLERS, draw.description_filler_a), " ",
        _pick(DESCRIPTION_FILLERS, draw.description_filler_b),
    )
    details = _concat(
        _pick(_SPEC_DETAIL_TEXT, draw.spec),
        _pick(_MATERIAL_DETAIL_TEXT, draw.material),
        _pick(_CONDITION_DETAIL_TEXT, draw.condition),
        _pick(_PACK_DETAIL_TEXT, draw.pack),
        "Item weight: ", pc.cast(pa.array(draw.weight), pa.large_string()), " pounds; ",
        "Model: ", model, ". ",
        _pick(DETAIL_FILLERS, draw.detail_filler),
    )
    full = _concat(title, "\n", description, " ", details)
    summary = _concat(
        "Title: ", title,
        "\nCategory: ", category,
        "\nBrand: ", brand,
        "\nDescription: ", description,
        "\nDetails: ", details,
    )
    del description, details  # free ~350 MB at 800k rows before the largest column
    prompt = _concat(PROMPT_PREFIX, summary, PROMPT_SUFFIX)

    frame = pd.DataFrame(
        {
            "title": _to_str_series(title),
            "category": _to_str_series(category),
            "price": pd.Series(draw.price, dtype=np.float64),
            "full": _to_str_series(full),
            "weight": pd.Series(draw.weight, dtype=np.float64),
            "summary": _to_str_series(summary),
            "prompt": _to_str_series(prompt),
            "id": pd.Series(np.arange(n_items, dtype=np.int64)),
        },
        columns=list(CATALOGUE_COLUMNS),
    )
    return frame


def generate_catalogue(n_items: int, seed: int) -> pd.DataFrame:
    """Generate ``n_items`` synthetic products shaped like the Hub's ``items_lite`` rows.

    Deterministic: the same ``(n_items, seed)`` always yields an identical frame, so the
    DVC stage that calls it is reproducible from ``params.yaml``'s ``seed`` alone. Prices
    are driven by words in ``summary`` (see ``docs/catalogue.md``) plus log-normal noise.

    Args:
        n_items: number of rows, at least 1.
        seed: seed for ``numpy.random.default_rng``.

    Returns:
        A frame with columns ``title, category, price, full, weight, summary, prompt, id``
        (``str`` text, ``float64`` price in dollars and weight in pounds, ``int64`` id
        ``0..n_items-1``).

    Raises:
        ValueError: if ``n_items`` is smaller than 1.
    """
    if isinstance(n_items, bool) or not isinstance(n_items, (int, np.integer)):
        raise TypeError(f"n_items must be an integer, got {type(n_items).__name__}")
    if n_items < 1:
        raise ValueError(f"n_items must be >= 1, got {n_items}")
    return _render(_draw(int(n_items), seed))
