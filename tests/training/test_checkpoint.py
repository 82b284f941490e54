"""What a checkpoint says about why it is not resumed."""

from __future__ import annotations

from pricer.training.checkpoint import identity_difference


def test_the_first_key_that_differs_is_named_with_both_values():
    saved = {"recipe": {"lr": 0.001, "epochs": 5}, "train.processes": 2, "code": "a" * 32}
    assert identity_difference(saved, saved) is None
    assert identity_difference(saved, {**saved, "train.processes": 1}) == "train.processes differs (2 vs 1)"
    assert (identity_difference(saved, {**saved, "recipe": {"lr": 0.002, "epochs": 5}})
            == "recipe.lr differs (0.001 vs 0.002)")
    assert identity_difference(saved, {**saved, "code": "b" * 32}) == f"code differs ('{'a' * 32}' vs '{'b' * 32}')"
    without_code = {key: value for key, value in saved.items() if key != "code"}
    assert identity_difference(without_code, saved) == f"code differs (absent vs '{'a' * 32}')"
    assert identity_difference(None, saved) == "its identity is unreadable"
