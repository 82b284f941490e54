from pathlib import Path

import pytest
import yaml

from pricer.params import Params, ParamsError, flatten, load_params, params_from_dict

REPO_PARAMS = Path(__file__).resolve().parents[1] / "params.yaml"


def test_repository_params_load_and_follow_the_recipes():
    params = load_params(REPO_PARAMS)
    assert params.mlp.hidden_layers == (128, 64, 64, 64, 64, 64, 64)
    assert (params.mlp.lr, params.mlp.batch_size, params.mlp.epochs) == (0.01, 64, 10)
    assert (params.lr, params.resnet.weight_decay, params.resnet.batch_size, params.resnet.epochs) == (
        0.001, 0.01, 64, 5)
    assert (params.resnet.dropout, params.resnet.cosine_t_max, params.resnet.grad_clip) == (0.2, 10, 1.0)
    assert (params.vectorize.n_features, params.vectorize.stop_words, params.vectorize.binary) == (
        5000, "english", True)


def test_missing_keys_take_defaults():
    assert params_from_dict({}) == Params()


def test_params_yaml_holds_exactly_the_declared_defaults():
    # params.yaml is the user interface, the pydantic models the one source of defaults: equal.
    assert load_params(REPO_PARAMS) == Params()


def test_the_lazy_input_optimizer_is_a_declared_choice_and_trains_on_several_processes():
    assert params_from_dict({"resnet": {"input_optimizer": "lazy"}}).resnet.input_optimizer == "lazy"
    both = params_from_dict({"resnet": {"input_optimizer": "lazy"}, "train": {"processes": 2}})
    assert (both.resnet.input_optimizer, both.train.processes) == ("lazy", 2)
    with pytest.raises(ParamsError, match=r"resnet.input_optimizer must be one of 'dense' or 'lazy', got 'sparse'"):
        params_from_dict({"resnet": {"input_optimizer": "sparse"}})


def test_params_are_read_as_yaml_1_2_like_dvc(tmp_path):
    # YAML 1.2 (DVC's reading) makes `1e-3` a number (1.1 made it text) and `1:30` text (1.1: 90)
    path = tmp_path / "params.yaml"
    path.write_text("lr: 1e-3\nmlp:\n  lr: 5E-3\n")
    assert (load_params(path).lr, load_params(path).mlp.lr) == (0.001, 0.005)
    path.write_text("lr: 1:30\n")
    with pytest.raises(ParamsError,
                       match=r"lr must be a number \(this is text in YAML 1.2, as DVC reads it\), got '1:30'"):
        load_params(path)


def test_a_number_is_never_taken_from_text():
    with pytest.raises(ParamsError, match="mlp.lr must be a number .*, got '0.01'"):
        params_from_dict({"mlp": {"lr": "0.01"}})


def test_the_data_seed_is_separate_from_the_training_seed():
    params = params_from_dict({"seed": 7})
    assert (params.seed, params.data.seed) == (7, 42)


@pytest.mark.parametrize(("processes", "message"), [
    (3, r"mlp.batch_size \(64\) must divide evenly among train.processes \(3\)"),
    (128, r"mlp.batch_size \(64\) must divide evenly among train.processes \(128\)"),
])
def test_a_batch_size_the_processes_do_not_divide_is_rejected_naming_both_keys(processes, message):
    with pytest.raises(ParamsError, match=message):
        params_from_dict({"train": {"processes": processes}})
    with pytest.raises(ParamsError, match=r"resnet.batch_size \(60\) must divide evenly among train.processes \(8\)"):
        params_from_dict({"train": {"processes": 8}, "resnet": {"batch_size": 60}})
    assert params_from_dict({"train": {"processes": 4}}).train.processes == 4


@pytest.mark.parametrize(
    ("raw", "key"),
    [
        ({"lr": -0.1}, "lr"),
        ({"lr": 0}, "lr"),
        ({"lr": "fast"}, "lr"),
        ({"mlp": {"lr": 0}}, "mlp.lr"),
        ({"mlp": {"batch_size": 0}}, "mlp.batch_size"),
        ({"resnet": {"batch_size": 0}}, "resnet.batch_size"),
        ({"resnet": {"layers": 1}}, "resnet.layers"),
        ({"vectorize": {"n_features": 0}}, "vectorize.n_features"),
        ({"vectorize": {"n_features": 2.5}}, "vectorize.n_features"),
        ({"train": {"device": "tpu"}}, "train.device"),
        ({"train": {"precision": "fp8"}}, "train.precision"),
        ({"mlp": {"target": "sqrt"}}, "mlp.target"),
        ({"mlp": {"epochs": True}}, "mlp.epochs"),
        ({"data": {"test_fraction": 0.7}}, "data.test_fraction"),
        ({"mlp": {"hidden_layers": []}}, "mlp.hidden_layers"),
        ({"mlp": {"hidden_layers": [128, "x"]}}, "mlp.hidden_layers[1]"),
        ({"mlp": "fast"}, "mlp"),
        ({"resnet": {"size": 3}}, "resnet.size"),
        ({"seed": -1}, "seed"),
        ({"data": {"seed": -1}}, "data.seed"),
        ({"data": {"seed": 1.5}}, "data.seed"),
        ({"lr": float("nan")}, "lr"),
        ({"lr": True}, "lr"),
        ({"train": {"progress": "sometimes"}}, "train.progress"),
        ({"vectorize": {"stop_words": "french"}}, "vectorize.stop_words"),
        ({"data": {"validation_fraction": 0.45, "test_fraction": 0.45}}, "data.validation_fraction"),
    ],
)
def test_bad_values_are_rejected_naming_the_key(raw, key):
    with pytest.raises(ParamsError, match=key.replace("[", r"\[").replace("]", r"\]")):
        params_from_dict(raw)


def test_file_errors_name_the_file(tmp_path):
    with pytest.raises(ParamsError, match="missing.yaml: file not found"):
        load_params(tmp_path / "missing.yaml")
    bad = tmp_path / "params.yaml"
    bad.write_text("mlp: [unclosed\n")
    with pytest.raises(ParamsError, match="params.yaml: not valid YAML"):
        load_params(bad)
    bad.write_text(yaml.safe_dump({"train": {"threads": -1}}))
    with pytest.raises(ParamsError, match=r"params.yaml: .*train.threads"):
        load_params(bad)


def test_optional_values_accept_null_and_numbers():
    params = params_from_dict({"data": {"max_train_items": None, "revision": None}, "train": {"progress": False}})
    assert params.data.max_train_items is None and params.train.progress is False
    assert params_from_dict({"lr": 1}).lr == 1.0


def test_errors_read_key_must_be_what_got_value():
    with pytest.raises(ParamsError) as raised:
        params_from_dict({"mlp": {"lr": 0}})
    assert str(raised.value) == "mlp.lr must be a positive number, got 0"
    with pytest.raises(ParamsError) as raised:
        params_from_dict({"resnet": {"size": 3}})
    assert str(raised.value).startswith("unknown key resnet.size; known: hidden, layers,")


def test_flatten_gives_the_names_dvc_exp_run_takes():
    nested = {"seed": 42, "lr": 0.001, "mlp": {"lr": 0.01, "hidden_layers": [16, 8]}, "data": {"synthetic_items": 800}}
    assert flatten(nested) == {"seed": 42, "lr": 0.001, "mlp.lr": 0.01, "mlp.hidden_layers": [16, 8],
                               "data.synthetic_items": 800}
