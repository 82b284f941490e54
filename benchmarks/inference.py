"""Benchmark 3: test-set inference throughput, raw text to dollars (hashing + model).

pricer's ``PricePredictor.predict(texts)`` (all texts hashed in one call, model in 8192-row
sparse batches under inference_mode) against the seed's per-item loop: for each text,
``vectorizer.transform([text])`` → ``torch.FloatTensor(row.toarray())`` → model on the one
dense row under ``torch.no_grad()`` → decode to dollars. Both use the same trained model (a
short fit on catalogue items) and the same texts; the predictions are checked to agree.
Goal: predict >= 100x the per-item loop's items/s. The split of predict's time into hashing
and model shows what bounds it.

    .venv/bin/python benchmarks/inference.py
    .venv/bin/python benchmarks/inference.py --items 10000 --models mlp --threads 2
"""

from __future__ import annotations

import argparse
import dataclasses
import time

import harness
import numpy as np
import torch

from pricer.batching import CSRTensors
from pricer.features import vectorize_texts
from pricer.models import build_model
from pricer.predictor import PricePredictor
from pricer.target import TargetTransform
from pricer.training import fit

GOAL = 100.0


def trained_predictor(kind: str, params, settings, train, val, seed: int) -> PricePredictor:
    arch, recipe = harness.model_and_recipe(params, kind, settings.n_features)
    target_kind = params.mlp.target if kind == "mlp" else "standardized_log"
    target = TargetTransform.fit(target_kind, train.prices)
    torch.manual_seed(seed)
    model = build_model(arch)
    fit(model, CSRTensors.from_scipy(train.features, target.encode(train.prices)),
        CSRTensors.from_scipy(val.features, target.encode(val.prices)), val.prices, target,
        dataclasses.replace(recipe, epochs=1), device=torch.device("cpu"), model_name=kind)
    return PricePredictor(kind, model.eval(), arch, settings, target)


def per_item_loop(predictor: PricePredictor, texts: list[str]) -> np.ndarray:
    """The seed's inference: one text at a time, densified, one model call each."""
    vectorizer = predictor.vectorizer.build()
    model = predictor.model.eval()
    prices = np.empty(len(texts))
    with torch.no_grad():
        for i, text in enumerate(texts):
            row = torch.FloatTensor(vectorizer.transform([text]).toarray())
            prices[i] = predictor.target.decode(model(row))[0]
    return prices


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=5_000, help="test texts priced by both sides")
    parser.add_argument("--train-items", type=int, default=20_000, help="items for the short training")
    parser.add_argument("--models", nargs="+", default=["mlp", "resnet"], choices=["mlp", "resnet"])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2], help="torch thread counts to run")
    parser.add_argument("--seed", type=int, default=42)
    args = parser.parse_args()

    info, params, settings, splits = harness.setup(
        args.threads, {"train": args.train_items, "validation": 2_000, "test": args.items}, args.seed,
        hashed=("train", "validation"))
    texts = splits["test"].texts
    print(f"data: {args.items:,} test texts ({np.mean([len(t) for t in texts]):.0f} characters on average)")

    payload = {"machine": info, "args": vars(args), "goal": GOAL, "results": {}}
    for threads in args.threads:
        harness.set_threads(threads)
        for kind in args.models:
            predictor = trained_predictor(kind, params, settings, splits["train"], splits["validation"], args.seed)
            predictor.predict(texts[:100])  # warm-up
            per_item_loop(predictor, texts[:50])
            outputs: dict[str, np.ndarray] = {}

            def reference(predictor=predictor, outputs=outputs) -> float:
                started = time.perf_counter()
                outputs["reference"] = per_item_loop(predictor, texts)
                return len(texts) / (time.perf_counter() - started)

            def batched(predictor=predictor, outputs=outputs) -> float:
                started = time.perf_counter()
                outputs["pricer"] = predictor.predict(texts)
                return len(texts) / (time.perf_counter() - started)

            ref, new, ratios = harness.compare_side_by_side(
                f"{kind}: inference throughput, raw text to dollars", {"reference": reference, "pricer": batched},
                args.repeats, len(texts), ("per-item loop (dense row)", "PricePredictor.predict"),
                "items/s", GOAL, threads)
            agree = float(np.max(np.abs(outputs["reference"] - outputs["pricer"]) / np.maximum(outputs["pricer"], 1.0)))
            print(f"  predictions agree: max relative difference {agree:.1e}")

            # what bounds predict: hashing vs model, timed separately (best of repeats)
            hash_s = min(_timed(lambda: vectorize_texts(texts, settings, chunk_rows=8192)) for _ in range(args.repeats))
            matrix = vectorize_texts(texts, settings, chunk_rows=8192)
            model_s = min(_timed(lambda predictor=predictor, matrix=matrix: predictor.predict_matrix(matrix))
                          for _ in range(args.repeats))
            vec = settings.build()
            one_hash_s = min(_timed(lambda vec=vec: [vec.transform([t]) for t in texts[:500]]) for _ in range(2)) / 500
            print(f"  predict = hashing {len(texts) / hash_s:,.0f} items/s + model {len(texts) / model_s:,.0f} items/s "
                  f"({100 * hash_s / (hash_s + model_s):.0f}% of the time is hashing); per-item loop: "
                  f"{1e6 * one_hash_s:.0f} us hashing + {1e6 * (1 / ref.best - one_hash_s):.0f} us model per item")
            payload["results"][f"{kind}@{threads}"] = {
                "reference": ref.as_dict(), "pricer": new.as_dict(), **ratios, "max_relative_difference": agree,
                "hashing_items_per_s": len(texts) / hash_s, "model_items_per_s": len(texts) / model_s,
                "per_item_hash_us": 1e6 * one_hash_s,
            }
    harness.write_results("inference", payload)


def _timed(fn) -> float:
    started = time.perf_counter()
    fn()
    return time.perf_counter() - started


if __name__ == "__main__":
    main()
