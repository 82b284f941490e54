import numpy as np
import pytest
import torch
from torch import nn

from pricer.batching import CSRTensors
from pricer.models import MLP, ResidualNet, SparseLinear, build_model, count_parameters

SEED_MLP = (128, 64, 64, 64, 64, 64, 64)


def test_seed_scale_residual_network_has_exactly_289_128_449_parameters():
    with torch.device("meta"):  # no memory: only shapes
        model = ResidualNet(5000, 4096, 10, 0.2)
    assert count_parameters(model) == 289_128_449


def test_mlp_is_eight_linear_layers_of_the_seed_shape():
    model = MLP(5000, SEED_MLP)
    linears = [m for m in model.modules() if isinstance(m, (nn.Linear, SparseLinear))]
    shapes = [(m.in_features, m.out_features) for m in linears]
    assert shapes == [(5000, 128), (128, 64)] + [(64, 64)] * 5 + [(64, 1)]
    assert sum(isinstance(m, nn.ReLU) for m in model.modules()) == 7


def test_residual_network_structure():
    model = ResidualNet(50, 16, layers=5, dropout=0.2)
    assert len(model.blocks) == 3
    block = model.blocks[0].block
    assert [type(m) for m in block] == [nn.Linear, nn.LayerNorm, nn.ReLU, nn.Dropout, nn.Linear, nn.LayerNorm]
    assert isinstance(model.input_norm[0], nn.LayerNorm) and model.input_norm[2].p == 0.2


def test_sparse_linear_initialises_like_nn_linear():
    torch.manual_seed(0)
    sparse = SparseLinear(5000, 128)
    bound = 1 / np.sqrt(5000)
    weight = sparse.weight.detach()
    assert float(weight.abs().max()) <= bound
    assert float(weight.std()) == pytest.approx(bound / np.sqrt(3), rel=0.05)


@pytest.mark.parametrize("kind", ["mlp", "resnet"])
def test_sparse_path_equals_dense_formulation(kind, random_csr):
    torch.manual_seed(0)
    arch = {"kind": "mlp", "n_features": 50, "hidden_layers": [16, 8], "init": "kaiming"} if kind == "mlp" else \
        {"kind": "resnet", "n_features": 50, "hidden": 16, "layers": 4, "dropout": 0.2}
    model = build_model(arch).eval()
    data = CSRTensors.from_scipy(random_csr)
    with torch.no_grad():
        sparse_out = model(data.batch(0, data.rows))
        dense_out = model(torch.from_numpy(random_csr.toarray()))
    torch.testing.assert_close(sparse_out, dense_out, rtol=1e-5, atol=1e-5)
    assert sparse_out[5] == pytest.approx(float(dense_out[5]))  # the empty row


def _input_weight_gradient(model, inputs) -> torch.Tensor:
    model.zero_grad(set_to_none=True)
    model(inputs).sum().backward()
    return model.input.weight.grad


def test_sparse_gradients_equal_dense_gradients(random_csr):
    torch.manual_seed(0)
    model = build_model({"kind": "mlp", "n_features": 50, "hidden_layers": [8], "init": "default"})
    batch = CSRTensors.from_scipy(random_csr).batch(0, 64)
    dense = _input_weight_gradient(model, torch.from_numpy(random_csr[:64].toarray())).clone()
    from_sparse_rows = _input_weight_gradient(model, batch).clone()
    torch.testing.assert_close(from_sparse_rows, dense, rtol=1e-5, atol=1e-6)
    model.input.sparse_gradient = True  # what training uses for plain SGD
    sparse = _input_weight_gradient(model, batch)
    assert sparse.is_sparse
    torch.testing.assert_close(sparse.to_dense(), from_sparse_rows, rtol=1e-6, atol=1e-7)


def test_unknown_kinds_are_refused():
    with pytest.raises(ValueError, match="unknown model kind"):
        build_model({"kind": "transformer"})
    with pytest.raises(ValueError, match="init"):
        MLP(10, (4,), init="xavier")

