"""presets/*.yaml: -S overrides of params.yaml that validate, and the README's one-line
`dvc exp run` for each holds exactly the preset's overrides."""

import re
from pathlib import Path

import pytest
import yaml

from pricer.params import Params, load_params, params_from_dict, with_overrides

REPO = Path(__file__).resolve().parents[1]
PRESETS = sorted((REPO / "presets").glob("*.yaml"))


def _overrides(path: Path) -> dict:
    return yaml.safe_load(path.read_text(encoding="utf-8"))["overrides"]


def test_there_is_a_real_products_preset():
    assert REPO / "presets" / "real-products.yaml" in PRESETS


@pytest.mark.parametrize("preset", PRESETS, ids=lambda path: path.stem)
def test_a_preset_validates_and_changes_exactly_its_keys(preset):
    raw = yaml.safe_load((REPO / "params.yaml").read_text(encoding="utf-8"))
    overrides = _overrides(preset)
    params = params_from_dict(with_overrides(raw, overrides))
    defaults = load_params(REPO / "params.yaml").model_dump()
    changed = params.model_dump()
    for key, value in overrides.items():
        *path, last = key.split(".")
        section, default_section = changed, defaults
        for part in path:
            section, default_section = section[part], default_section[part]
        assert section[last] == value and default_section[last] != value, key


@pytest.mark.parametrize("preset", PRESETS, ids=lambda path: path.stem)
def test_the_readme_one_liner_sets_exactly_the_preset(preset):
    lines = [line for line in (REPO / "README.md").read_text(encoding="utf-8").splitlines()
             if line.startswith("dvc exp run") and f"-n {preset.stem}" in line]
    assert len(lines) == 1, f"README needs one `dvc exp run -n {preset.stem} ...` line"
    given = dict(re.findall(r"-S ([\w.]+)=(\S+)", lines[0]))
    assert {key: yaml.safe_load(value) for key, value in given.items() if key != "data.source"} == _overrides(preset)


def test_overrides_set_dotted_keys_and_name_a_missing_section():
    assert params_from_dict(with_overrides({}, {"lr": 0.002})).lr == 0.002
    raw = {"resnet": {"epochs": 5}}
    assert with_overrides(raw, {"resnet.epochs": 10}) == {"resnet": {"epochs": 10}} and raw["resnet"]["epochs"] == 5
    with pytest.raises(ValueError, match="override resnet.epochs: no section 'resnet'"):
        with_overrides({}, {"resnet.epochs": 10})
    assert Params() == params_from_dict(with_overrides({}, {}))
