"""Side-by-side statistics: the embedded catalogue against the real product sample (issue 13).

    python benchmarks/catalogue_stats.py [--items 60000] [--seed 42] [--sample PATH]

Prints a markdown table (the one in docs/catalogue.md): price quantiles and mean, summary
length, hashed non-zeros per row (the pipeline's default HashingVectorizer settings) and the
category tail, for the catalogue at the pipeline's default size and for the real sample,
with the catalogue/real ratio and whether it is inside the ±20% target. Without the real
sample (a user's machine has no ``../shared``) it prints the catalogue's column alone.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
if str(REPO / "src") not in sys.path:  # runnable from a fresh clone even without `pip install -e .`
    sys.path.insert(0, str(REPO / "src"))

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from pricer.catalogue import generate_catalogue  # noqa: E402
from pricer.features import VectorizerSettings, vectorize_texts  # noqa: E402

REAL_SAMPLE = REPO.parent / "shared" / "data" / "real_items_sample.parquet"
#: Statistics with a ±20% target; the others are shown for context.
TARGETED = ("price p10", "price median", "price mean", "price p90", "price p99", "summary characters",
            "hashed non-zeros per row")


def statistics(frame: pd.DataFrame) -> dict[str, float]:
    """The measurable statistics the catalogue is calibrated against, for one frame."""
    price = frame["price"].to_numpy(dtype=np.float64)
    matrix = vectorize_texts(frame["summary"].tolist(), VectorizerSettings(), n_jobs=1)
    category = frame["category"].fillna("").astype(str).str.strip()
    counts = category[category != ""].value_counts()
    return {
        "price p10": float(np.quantile(price, 0.10)),
        "price median": float(np.median(price)),
        "price mean": float(price.mean()),
        "price p90": float(np.quantile(price, 0.90)),
        "price p99": float(np.quantile(price, 0.99)),
        "price min": float(price.min()),
        "price max": float(price.max()),
        "summary characters": float(frame["summary"].str.len().mean()),
        "hashed non-zeros per row": float(np.diff(matrix.indptr).mean()),
        "distinct categories": float(len(counts)),
        "share with empty category": float((category == "").mean()),
        "share outside the 10 largest categories": float(counts.iloc[10:].sum() / len(frame)),
    }


def _format(name: str, value: float) -> str:
    if name.startswith("price"):
        return f"${value:,.2f}"
    if name.startswith("share"):
        return f"{100 * value:.1f}%"
    if name == "distinct categories":
        return f"{value:.0f}"
    return f"{value:.1f}"


def table(catalogue: dict[str, float], real: dict[str, float] | None) -> str:
    if real is None:
        lines = ["| statistic | embedded catalogue |", "|---|---|"]
        return "\n".join(lines + [f"| {name} | {_format(name, value)} |" for name, value in catalogue.items()])
    lines = ["| statistic | embedded catalogue | real sample | catalogue ÷ real | within ±20% |",
             "|---|---|---|---|---|"]
    for name, value in catalogue.items():
        ratio = value / real[name] if real[name] else float("nan")
        verdict = ("yes" if abs(ratio - 1) <= 0.2 else "**no**") if name in TARGETED else "(context)"
        lines.append(f"| {name} | {_format(name, value)} | {_format(name, real[name])} | {ratio:.2f} | {verdict} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=60_000, help="catalogue rows (default: the pipeline's 60,000)")
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--sample", type=Path, default=REAL_SAMPLE, help="real products (parquet)")
    args = parser.parse_args(argv)

    started = time.perf_counter()
    frame = generate_catalogue(args.items, args.seed)
    print(f"catalogue: {args.items:,} items, seed {args.seed}, generated in {time.perf_counter() - started:.2f} s")
    real = None
    if args.sample.exists():
        sample = pd.read_parquet(args.sample, columns=["summary", "category", "price"])
        print(f"real sample: {len(sample):,} rows from {args.sample}")
        real = statistics(sample)
    else:
        print(f"real sample not found at {args.sample}: showing the catalogue alone")
    print()
    print(table(statistics(frame), real))
    return 0


if __name__ == "__main__":
    sys.exit(main())
