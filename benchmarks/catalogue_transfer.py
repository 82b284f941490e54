"""Do lessons learnt on the embedded catalogue transfer to real products? (issue 13)

    python benchmarks/catalogue_transfer.py [--items 11816] [--threads 2] [--sample PATH]

Runs one grid of settings (both models × 3 learning rates, everything else from params.yaml)
on the embedded catalogue and on the real product sample, each split as the fetch stage
splits a single-split source (shuffled with the seed, 10% validation, 10% test), trains as the
train stages do, and prints every setting's test MAE on both and the Spearman rank correlation
of the two columns. A user who tunes on the default run picks what is also best on real data
when the correlation is high (goal: ≥ 0.8). ``--items`` defaults to the real sample's size so
both sides train on the same number of rows. Skips cleanly (exit 0) without the sample, which
only the team's machines have.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import scoring
import torch
from scipy.stats import spearmanr

from pricer.params import params_from_dict, with_overrides

#: (model, section of params.yaml that holds its lr, learning rates): the grid.
GRID = (
    ("mlp", "mlp", (0.003, 0.01, 0.03)),
    ("resnet", "", (0.0003, 0.001, 0.003)),
)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=11_816, help="catalogue rows (default: the real sample's)")
    parser.add_argument("--threads", type=int, default=2, help="torch threads")
    parser.add_argument("--sample", type=Path, default=scoring.REAL_SAMPLE, help="real products (parquet)")
    args = parser.parse_args(argv)
    if not args.sample.exists():
        print(f"skipped: the real product sample is not at {args.sample} (only on the team's machines)")
        return 0
    torch.set_num_threads(args.threads)
    params = scoring.repo_params()
    datasets = {
        "catalogue": scoring.hashed_splits("synthetic", params, synthetic_items=args.items),
        "real": scoring.hashed_splits(str(args.sample), params),
    }
    for name, splits in datasets.items():
        sizes = {split: len(prices) for split, prices in splits.prices.items()}
        print(f"{name}: {sizes}, median baseline ${scoring.baseline_test_maes(splits)['median']:.2f}")

    rows = []
    for model_name, section, rates in GRID:
        for lr in rates:
            params_here = params_from_dict(with_overrides(params.as_dict(), {f"{section}.lr" if section else "lr": lr}))
            started = time.perf_counter()
            maes = {name: scoring.model_test_mae(params_here, model_name, splits) for name, splits in datasets.items()}
            rows.append((f"{model_name} lr={lr:g}", maes["catalogue"], maes["real"]))
            print(f"{rows[-1][0]}: catalogue ${maes['catalogue']:.2f}, real ${maes['real']:.2f}"
                  f" ({time.perf_counter() - started:.0f} s)", flush=True)

    correlation = spearmanr([row[1] for row in rows], [row[2] for row in rows]).statistic
    catalogue_rank = {row[0]: rank for rank, row in enumerate(sorted(rows, key=lambda row: row[1]), 1)}
    real_rank = {row[0]: rank for rank, row in enumerate(sorted(rows, key=lambda row: row[2]), 1)}
    print()
    print("| setting | catalogue test MAE (rank) | real test MAE (rank) |")
    print("|---|---|---|")
    for name, catalogue, real in rows:
        print(f"| {name} | ${catalogue:.2f} ({catalogue_rank[name]}) | ${real:.2f} ({real_rank[name]}) |")
    print()
    print(f"Spearman rank correlation of the test MAEs: {correlation:.3f} (goal >= 0.8:"
          f" {'met' if correlation >= 0.8 else 'not met'})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
