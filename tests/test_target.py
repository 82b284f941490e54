import numpy as np
import pytest
import torch

from pricer.target import TargetTransform

PRICES = np.array([0.99, 5.0, 29.99, 120.0, 999.0])


@pytest.mark.parametrize("kind", ["standardized_log", "log", "raw"])
def test_round_trip(kind):
    transform = TargetTransform.fit(kind, PRICES)
    np.testing.assert_allclose(transform.decode(torch.from_numpy(transform.encode(PRICES))), PRICES, rtol=1e-5)


def test_standardized_log_learns_train_statistics():
    transform = TargetTransform.fit("standardized_log", PRICES)
    encoded = transform.encode(PRICES)
    assert transform.mean == pytest.approx(np.log1p(PRICES).mean())
    assert encoded.mean() == pytest.approx(0, abs=1e-6) and encoded.std() == pytest.approx(1, abs=1e-5)


def test_predictions_are_clamped_at_zero():
    assert TargetTransform("raw").decode(np.array([-5.0, 3.0])).tolist() == [0.0, 3.0]
    assert TargetTransform("log").decode(np.array([-3.0]))[0] == 0.0


def test_invalid_state_is_refused():
    with pytest.raises(ValueError, match="kind"):
        TargetTransform("sqrt")
    with pytest.raises(ValueError, match="std"):
        TargetTransform("standardized_log", mean=1.0, std=0.0)


def test_constant_prices_do_not_divide_by_zero():
    assert TargetTransform.fit("standardized_log", np.array([5.0, 5.0])).std == 1.0
