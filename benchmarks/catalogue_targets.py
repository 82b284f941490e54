"""The default run's rankings on the embedded catalogue against issue 13's targets.

    python benchmarks/catalogue_targets.py [--items 60000] [--threads 2]

Generates the catalogue at the pipeline's size, splits and hashes it as `dvc repro` does
(default params.yaml), trains both networks as the train stages do, fits ridge regression on
log1p(price) over the same hashed features (alpha chosen on validation) and prints test MAEs,
the constant baselines, best ÷ median-baseline, and whether each target holds:
ratio in [0.60, 0.78]; residual network < MLP; both < ridge and < the constant baselines.
"""

from __future__ import annotations

import argparse
import sys
import time

import scoring
import torch


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=None, help="catalogue rows (default: params.yaml's)")
    parser.add_argument("--threads", type=int, default=2, help="torch threads")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    params = scoring.repo_params()

    started = time.perf_counter()
    splits = scoring.hashed_splits("synthetic", params, synthetic_items=args.items)
    sizes = {name: len(prices) for name, prices in splits.prices.items()}
    print(f"catalogue splits {sizes}, data seed {params.data.seed}, "
          f"fetched and hashed in {time.perf_counter() - started:.0f} s")
    baselines = scoring.baseline_test_maes(splits)
    alpha, ridge = scoring.ridge_test_mae(splits)
    maes = {}
    for model_name in ("mlp", "resnet"):
        started = time.perf_counter()
        maes[model_name] = scoring.model_test_mae(params, model_name, splits)
        print(f"{model_name}: test MAE ${maes[model_name]:.2f} ({time.perf_counter() - started:.0f} s)")
    best = min(maes.values())
    ratio = best / baselines["median"]
    print()
    print("| predictor | test MAE |")
    print("|---|---|")
    print(f"| SGD MLP | ${maes['mlp']:.2f} |")
    print(f"| residual network | ${maes['resnet']:.2f} |")
    print(f"| ridge, log1p(price), alpha {alpha:g} (best on validation) | ${ridge:.2f} |")
    print(f"| constant: training median | ${baselines['median']:.2f} |")
    print(f"| constant: training mean | ${baselines['mean']:.2f} |")
    print()
    checks = {
        f"best ÷ median baseline = {ratio:.3f} in [0.60, 0.78]": 0.60 <= ratio <= 0.78,
        "residual network beats the MLP": maes["resnet"] < maes["mlp"],
        "both networks beat ridge": max(maes.values()) < ridge,
        "both networks beat the constant baselines": max(maes.values()) < min(baselines.values()),
    }
    for check, holds in checks.items():
        print(f"{'met' if holds else 'NOT MET'}: {check}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
