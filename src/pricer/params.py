"""``params.yaml`` declared once: types, ranges and defaults, validated before any stage works.

The pydantic models below are the single source of defaults and rules; ``params.yaml`` is the
user interface and holds the same values (a test keeps the two equal). Every error names the
file and the key (``params.yaml: mlp.lr must be a positive number, got 0``), so a typo in
``dvc exp run -S`` fails in milliseconds instead of after an hour of training.
"""

from __future__ import annotations

import copy
import math
import reprlib
import warnings
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    Strict,
    ValidationError,
    model_validator,
)
from pydantic_core import PydanticCustomError

from pricer.errors import PricerError


class ParamsError(PricerError, ValueError):
    """A parameter is missing, of the wrong type, or has an impossible value."""


MAX_SPLIT_FRACTION = 0.5  # each of validation and test, exclusive
MAX_HELD_OUT_FRACTION = 0.9  # validation + test together, exclusive: train keeps at least a tenth


def check_split_fractions(validation_fraction: float, test_fraction: float) -> None:
    """The one rule for carving validation and test out of a single split (params validation and
    ``pricer.sources`` both apply it); raises ValueError naming the fraction that breaks it."""
    for key, fraction in (("data.validation_fraction", validation_fraction), ("data.test_fraction", test_fraction)):
        if not 0 < fraction < MAX_SPLIT_FRACTION:
            raise ValueError(f"{key} must be a fraction in (0, {MAX_SPLIT_FRACTION}), got {fraction}")
    if validation_fraction + test_fraction >= MAX_HELD_OUT_FRACTION:
        raise ValueError(f"data.validation_fraction + data.test_fraction must be < {MAX_HELD_OUT_FRACTION}, "
                         f"got {validation_fraction} + {test_fraction}")


def _rule(expected: str, holds: Callable[[Any], bool]) -> AfterValidator:
    """A range check whose failure reads ``<key> must be <expected>, got <value>``."""

    def check(value: Any) -> Any:
        if not holds(value):
            raise PydanticCustomError("pricer_rule", "must be {expected}", {"expected": expected})
        return value

    return AfterValidator(check)


def _yaml_number(value: Any) -> Any:
    """A number as YAML 1.2 (and so DVC) reads it: ``1e-3`` is one, a string never is, even one
    that Python could parse (DVC records ``'1:30'`` or ``'0.5'`` as text, so training with a number
    would differ from the record). Booleans are not numbers here, whatever Python thinks."""
    if isinstance(value, str):
        raise PydanticCustomError("pricer_type", "must be a number (this is text in YAML 1.2, as DVC reads it)")
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise PydanticCustomError("pricer_type", "must be a number")
    if isinstance(value, (int, float)) and not math.isfinite(value):
        raise PydanticCustomError("pricer_type", "must be a finite number")
    return value


Integer = Annotated[int, Strict()]
Number = Annotated[float, BeforeValidator(_yaml_number)]
Flag = Annotated[bool, Strict()]
Text = Annotated[str, Strict()]

PositiveInt = Annotated[Integer, _rule("an integer >= 1", lambda v: v >= 1)]
PositiveNumber = Annotated[Number, _rule("a positive number", lambda v: v > 0)]
NonNegativeNumber = Annotated[Number, _rule("a number >= 0", lambda v: v >= 0)]
Seed = Annotated[Integer, _rule("an integer >= 0", lambda v: v >= 0)]
SplitFraction = Annotated[Number, _rule(f"a fraction in (0, {MAX_SPLIT_FRACTION})",
                                        lambda v: 0 < v < MAX_SPLIT_FRACTION)]
NonBlank = Annotated[Text, _rule("a non-empty string", lambda v: v.strip() != "")]

Device = Literal["auto", "cpu", "cuda", "mps"]
Precision = Literal["fp32", "bf16"]
Target = Literal["standardized_log", "log", "raw"]
Init = Literal["kaiming", "default"]
InputOptimizer = Literal["dense", "lazy"]


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class DataParams(_Section):
    source: Annotated[Text, _rule("'synthetic', a local path or a Hub dataset id",
                                  lambda v: v.strip() != "")] = "synthetic"
    revision: Text | None = None
    seed: Seed = 42  # the catalogue and the splits: the test items stay put when `seed` changes
    synthetic_items: Annotated[Integer, _rule("an integer >= 10", lambda v: v >= 10)] = 60000
    max_train_items: PositiveInt | None = None
    validation_fraction: SplitFraction = 0.1
    test_fraction: SplitFraction = 0.1


class VectorizeParams(_Section):
    text_field: Annotated[Text, _rule("a non-empty column name", lambda v: v.strip() != "")] = "summary"
    n_features: PositiveInt = 5000
    stop_words: Annotated[Text | None, _rule("'english' or null", lambda v: v in (None, "english"))] = "english"
    binary: Flag = True
    norm: Annotated[Text | None, _rule("'l2', 'l1' or null", lambda v: v in (None, "l1", "l2"))] = "l2"
    chunk_rows: PositiveInt = 20000
    n_jobs: PositiveInt = 2


class MLPParams(_Section):
    hidden_layers: Annotated[tuple[PositiveInt, ...], Field(min_length=1)] = (128, 64, 64, 64, 64, 64, 64)
    lr: PositiveNumber = 0.01
    batch_size: PositiveInt = 64
    epochs: PositiveInt = 10
    target: Target = "standardized_log"
    init: Init = "kaiming"


class ResNetParams(_Section):
    hidden: PositiveInt = 256
    layers: Annotated[Integer, _rule("an integer >= 2 (input and output layers)", lambda v: v >= 2)] = 6
    dropout: Annotated[Number, _rule("a probability in [0, 1)", lambda v: 0 <= v < 1)] = 0.2
    weight_decay: NonNegativeNumber = 0.01
    batch_size: PositiveInt = 64
    epochs: PositiveInt = 5
    cosine_t_max: PositiveInt = 10
    grad_clip: PositiveNumber = 1.0
    # lazy: row-sparse AdamW for the input layer (training.lazy), for wide vocabularies
    input_optimizer: InputOptimizer = "dense"


class TrainParams(_Section):
    device: Device = "auto"
    threads: Annotated[Integer, _rule("an integer >= 0 (0 = torch default)", lambda v: v >= 0)] = 2
    precision: Precision = "fp32"
    keep_best: Flag = True
    deterministic: Flag = False
    processes: PositiveInt = 1  # per node
    nodes: PositiveInt = 1  # machines (README, "Beyond one machine"); ranks = nodes x processes
    resume: Flag = False
    progress: Annotated[Any, _rule("true, false or 'auto'", lambda v: v is True or v is False or v == "auto")] = "auto"


class EvaluateParams(_Section):
    first_n: PositiveInt = 200
    hit_dollars: NonNegativeNumber = 40.0
    hit_fraction: NonNegativeNumber = 0.2
    bootstrap_resamples: PositiveInt = 2000  # the 95% intervals: a percentile bootstrap over test items
    bootstrap_seed: Seed = 0
    # the price ranges' level: read at prediction time from each model's stored calibration, never retrains
    interval_level: Annotated[Number, _rule("a fraction in (0, 1), e.g. 0.8", lambda v: 0 < v < 1)] = 0.8


# `register` is the user's key (tracking.register); pydantic warns that it shadows ABCMeta.register,
# a class-level method no params object uses, so that one warning is silenced.
with warnings.catch_warnings():
    warnings.filterwarnings("ignore", message='Field name "register"', category=UserWarning)

    class TrackingParams(_Section):
        enabled: Flag = True
        experiment: Annotated[Text, _rule("a non-empty name", lambda v: v.strip() != "")] = "pricer"
        busy_timeout_s: Annotated[Number, _rule("a positive number of seconds", lambda v: v > 0)] = 60.0
        register: Flag = True  # each tracked model becomes a new version of pricer-<model> in the registry


class Params(_Section):
    seed: Seed = 42  # initialisation, shuffling and dropout (the data has data.seed)
    lr: PositiveNumber = 0.001
    data: DataParams = DataParams()
    vectorize: VectorizeParams = VectorizeParams()
    mlp: MLPParams = MLPParams()
    resnet: ResNetParams = ResNetParams()
    train: TrainParams = TrainParams()
    evaluate: EvaluateParams = EvaluateParams()
    tracking: TrackingParams = TrackingParams()

    @model_validator(mode="after")
    def _consistent(self) -> Params:
        try:
            check_split_fractions(self.data.validation_fraction, self.data.test_fraction)
        except ValueError as error:
            raise PydanticCustomError("pricer_consistency", str(error)) from None
        ranks = self.train.nodes * self.train.processes
        among = (f"train.processes ({ranks})" if self.train.nodes == 1 else
                 f"train.nodes x train.processes ({self.train.nodes} x {self.train.processes} = {ranks})")
        for section, batch_size in (("mlp", self.mlp.batch_size), ("resnet", self.resnet.batch_size)):
            if batch_size % ranks:
                raise PydanticCustomError(
                    "pricer_consistency",
                    "{section}.batch_size ({batch_size}) must divide evenly among {among}: "
                    "the batch size is the global one, split across the processes",
                    {"section": section, "batch_size": batch_size, "among": among},
                )
        return self

    def as_dict(self) -> dict[str, Any]:
        return self.model_dump()


def _key(location: tuple[Any, ...]) -> str:
    key = ""
    for part in location:
        key += f"[{part}]" if isinstance(part, int) else (f".{part}" if key else str(part))
    return key


def _message(error: dict[str, Any], raw: Any) -> str:
    """One pydantic error as ``<key> must be <what>, got <value>``."""
    location = tuple(part for part in error["loc"]
                     if not str(part).startswith(("function-", "literal[", "bool", "lax")))
    key, kind, value = _key(location), error["type"], error.get("input")
    if kind == "extra_forbidden":
        section = Params
        for part in location[:-1]:
            section = section.model_fields[part].annotation
        return f"unknown key {key}; known: {', '.join(section.model_fields)}"
    if kind == "pricer_consistency":
        return error["msg"]
    if kind == "model_type" or kind == "model_attributes_type":
        return f"{key or 'the file'} must be a mapping of keys, got {_short_repr(value)}"
    expectations = {
        "int_type": "an integer", "bool_type": "true or false", "string_type": "a string",
        "tuple_type": "a list", "too_short": "a non-empty list of positive widths", "literal_error": None,
    }
    if kind == "literal_error":
        what = "one of " + error["ctx"]["expected"]
    elif kind.startswith("pricer_"):
        what = error["msg"].removeprefix("must be ")
    else:
        what = expectations.get(kind) or error["msg"]
    return f"{key} must be {what}, got {_short_repr(value)}"


def _short_repr(value: Any) -> str:
    """A value as the message shows it: cut short, so a huge or self-referencing value (a YAML
    alias bomb) costs microseconds to show, never the memory of writing it out."""
    shortened = reprlib.Repr()  # keyword arguments only from Python 3.12
    shortened.maxlevel, shortened.maxlist, shortened.maxtuple, shortened.maxdict = 3, 6, 6, 6
    shortened.maxstring = shortened.maxother = 80
    return shortened.repr(value)


# params.yaml holds a few dozen scalars and short lists: far more values than this under one key
# is an alias bomb (``a: &a [x, x]``, ``b: &b [*a, *a]``, ...: a few lines that stand for billions
# of values) or a self-referencing value, refused before anything walks it in full.
MAX_VALUES_PER_KEY = 10_000


def _stands_for_more_than(value: Any, limit: int) -> bool:
    """Whether ``value`` stands for more than ``limit`` values, counting an alias as often as it
    occurs; stops once ``limit`` is passed, so a bomb costs ``limit`` steps, never its expansion."""
    stack, count = [value], 0
    while stack:
        item = stack.pop()
        count += 1
        if count > limit:
            return True
        if isinstance(item, dict):
            stack.extend(item.values())
        elif isinstance(item, (list, tuple)):
            stack.extend(item)
    return False


def check_value_sizes(raw: dict[str, Any], limit: int = MAX_VALUES_PER_KEY) -> None:
    """Raise a ParamsError naming the first key (``section.key`` where it lies in a section) whose
    value stands for more than ``limit`` values."""
    for name, value in raw.items():
        if not _stands_for_more_than(value, limit):
            continue
        inner = next((key for key, item in value.items() if _stands_for_more_than(item, limit)), None) \
            if isinstance(value, dict) else None
        key = f"{name}.{inner}" if inner is not None else name
        raise ParamsError(f"{key} stands for more than {limit:,} values (a YAML alias that expands, or refers "
                          "to itself?); params are numbers, strings and short lists")


def params_from_dict(raw: Any) -> Params:
    """Validate a parsed params mapping; missing keys take the declared defaults."""
    if not isinstance(raw, dict):
        raise ParamsError("the file must hold a mapping of keys")
    check_value_sizes(raw)
    try:
        return Params.model_validate(raw)
    except ValidationError as error:
        # A value that fails several alternatives (``bool | 'auto'``) reports each; the first suffices.
        raise ParamsError(_message(error.errors()[0], raw)) from None


def flatten(mapping: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """``{"mlp": {"lr": 0.01}}`` → ``{"mlp.lr": 0.01}``: params under the dotted names that
    ``dvc exp run -S`` takes and MLflow shows."""
    flat: dict[str, Any] = {}
    for key, value in mapping.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            flat.update(flatten(value, f"{name}."))
        else:
            flat[name] = value
    return flat


def with_overrides(raw: dict[str, Any], overrides: dict[str, Any]) -> dict[str, Any]:
    """A copy of a parsed params mapping with ``dvc exp run -S``-style dotted keys set
    (``{"resnet.epochs": 10}``): how a preset (``presets/*.yaml``) applies to params.yaml."""
    result = copy.deepcopy(raw)
    for key, value in overrides.items():
        section = result
        *path, last = key.split(".")
        for part in path:
            if not isinstance(section.get(part), dict):
                raise ParamsError(f"override {key}: no section {part!r} in the params")
            section = section[part]
        section[last] = value
    return result


def parse_params_yaml(text: str) -> Any:
    """``params.yaml``'s text read as DVC reads it: ruamel.yaml's safe loader, YAML 1.2 (DVC's
    ``parse_yaml``). PyYAML's YAML 1.1 reads some values otherwise (``1:30`` is 90 there,
    ``yes``/``on`` are true, ``1e-3`` a string), so what ran would differ from what DVC records."""
    from ruamel.yaml import YAML

    return YAML(typ="safe").load(text)


def load_params(path: str | Path = "params.yaml") -> Params:
    """Read and validate ``params.yaml``; errors name the file and the key."""
    from ruamel.yaml import YAMLError

    path = Path(path)
    try:
        raw = parse_params_yaml(path.read_text(encoding="utf-8")) or {}
    except FileNotFoundError:
        raise ParamsError(f"{path}: file not found") from None
    except (YAMLError, UnicodeDecodeError) as error:
        problem = " ".join(str(error).split())
        raise ParamsError(f"{path}: not valid YAML: {problem[:300]}") from None
    try:
        return params_from_dict(raw)
    except ParamsError as error:
        raise ParamsError(f"{path}: {error}") from None
