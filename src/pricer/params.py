"""Typed view of ``params.yaml``, validated before any stage does work.

Every check names the offending key (``mlp.lr``), so a typo in ``dvc exp run -S`` fails in
milliseconds instead of after an hour of training.
"""

from __future__ import annotations

import dataclasses
import types
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Union, get_args, get_origin, get_type_hints

import yaml

Device = Literal["auto", "cpu", "cuda", "mps"]
Precision = Literal["fp32", "bf16"]
Target = Literal["standardized_log", "log", "raw"]
Init = Literal["kaiming", "default"]


class ParamsError(ValueError):
    """A parameter is missing, of the wrong type, or has an impossible value."""


@dataclass(frozen=True)
class DataParams:
    source: str = "synthetic"
    revision: str | None = None
    synthetic_items: int = 60000
    max_train_items: int | None = None
    validation_fraction: float = 0.1
    test_fraction: float = 0.1


@dataclass(frozen=True)
class VectorizeParams:
    text_field: str = "summary"
    n_features: int = 5000
    stop_words: str | None = "english"
    binary: bool = True
    norm: str | None = "l2"
    chunk_rows: int = 20000
    n_jobs: int = 2


@dataclass(frozen=True)
class MLPParams:
    hidden_layers: tuple[int, ...] = (128, 64, 64, 64, 64, 64, 64)
    lr: float = 0.01
    batch_size: int = 64
    epochs: int = 10
    target: Target = "standardized_log"
    init: Init = "kaiming"


@dataclass(frozen=True)
class ResNetParams:
    hidden: int = 256
    layers: int = 6
    dropout: float = 0.2
    weight_decay: float = 0.01
    batch_size: int = 64
    epochs: int = 5
    cosine_t_max: int = 10
    grad_clip: float = 1.0


@dataclass(frozen=True)
class TrainParams:
    device: Device = "auto"
    threads: int = 2
    precision: Precision = "fp32"
    keep_best: bool = True
    deterministic: bool = False
    processes: int = 1
    resume: bool = False
    progress: bool | Literal["auto"] = "auto"


@dataclass(frozen=True)
class EvaluateParams:
    first_n: int = 200
    hit_dollars: float = 40.0
    hit_fraction: float = 0.2


@dataclass(frozen=True)
class TrackingParams:
    enabled: bool = True
    experiment: str = "pricer"
    busy_timeout_s: float = 60.0  # how long to wait for a store another process is writing


@dataclass(frozen=True)
class Params:
    seed: int = 42
    lr: float = 0.001
    data: DataParams = field(default_factory=DataParams)
    vectorize: VectorizeParams = field(default_factory=VectorizeParams)
    mlp: MLPParams = field(default_factory=MLPParams)
    resnet: ResNetParams = field(default_factory=ResNetParams)
    train: TrainParams = field(default_factory=TrainParams)
    evaluate: EvaluateParams = field(default_factory=EvaluateParams)
    tracking: TrackingParams = field(default_factory=TrackingParams)

    def as_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


# (key, predicate, what the value must be) checked after types are right.
_RULES: list[tuple[str, Any, str]] = [
    ("lr", lambda v: v > 0, "a positive number"),
    ("data.synthetic_items", lambda v: v >= 10, "an integer >= 10"),
    ("data.max_train_items", lambda v: v is None or v >= 1, "null or an integer >= 1"),
    ("data.validation_fraction", lambda v: 0 < v < 0.5, "a fraction in (0, 0.5)"),
    ("data.test_fraction", lambda v: 0 < v < 0.5, "a fraction in (0, 0.5)"),
    ("vectorize.text_field", lambda v: v.strip() != "", "a non-empty column name"),
    ("vectorize.n_features", lambda v: v >= 1, "an integer >= 1"),
    ("vectorize.stop_words", lambda v: v in (None, "english"), "'english' or null"),
    ("vectorize.norm", lambda v: v in (None, "l1", "l2"), "'l2', 'l1' or null"),
    ("vectorize.chunk_rows", lambda v: v >= 1, "an integer >= 1"),
    ("vectorize.n_jobs", lambda v: v >= 1, "an integer >= 1"),
    ("mlp.hidden_layers", lambda v: len(v) >= 1 and all(h >= 1 for h in v), "a non-empty list of positive widths"),
    ("mlp.lr", lambda v: v > 0, "a positive number"),
    ("mlp.batch_size", lambda v: v >= 1, "an integer >= 1"),
    ("mlp.epochs", lambda v: v >= 1, "an integer >= 1"),
    ("resnet.hidden", lambda v: v >= 1, "an integer >= 1"),
    ("resnet.layers", lambda v: v >= 2, "an integer >= 2 (input and output layers)"),
    ("resnet.dropout", lambda v: 0 <= v < 1, "a probability in [0, 1)"),
    ("resnet.weight_decay", lambda v: v >= 0, "a number >= 0"),
    ("resnet.batch_size", lambda v: v >= 1, "an integer >= 1"),
    ("resnet.epochs", lambda v: v >= 1, "an integer >= 1"),
    ("resnet.cosine_t_max", lambda v: v >= 1, "an integer >= 1"),
    ("resnet.grad_clip", lambda v: v > 0, "a positive number"),
    ("train.threads", lambda v: v >= 0, "an integer >= 0 (0 = torch default)"),
    ("train.processes", lambda v: v >= 1, "an integer >= 1"),
    ("evaluate.first_n", lambda v: v >= 1, "an integer >= 1"),
    ("evaluate.hit_dollars", lambda v: v >= 0, "a number >= 0"),
    ("evaluate.hit_fraction", lambda v: v >= 0, "a number >= 0"),
    ("tracking.experiment", lambda v: v.strip() != "", "a non-empty name"),
    ("tracking.busy_timeout_s", lambda v: v > 0, "a positive number of seconds"),
    ("data.source", lambda v: v.strip() != "", "'synthetic', a local path or a Hub dataset id"),
]


def _type_name(annotation: Any) -> str:
    return str(annotation).replace("typing.", "")


def _coerce(key: str, value: Any, annotation: Any) -> Any:
    """Return ``value`` as ``annotation`` or raise ParamsError naming ``key``."""
    origin = get_origin(annotation)
    args = get_args(annotation)
    if origin is Literal:
        if value not in args:
            choices = ", ".join(repr(a) for a in args)
            raise ParamsError(f"params: {key} must be one of {choices}, got {value!r}")
        return value
    if origin in (tuple, list):
        if not isinstance(value, (list, tuple)):
            raise ParamsError(f"params: {key} must be a list, got {value!r}")
        return tuple(_coerce(f"{key}[{i}]", v, args[0]) for i, v in enumerate(value))
    if origin in (Union, types.UnionType):  # Optional[...] or e.g. bool | Literal["auto"]
        if value is None and type(None) in args:
            return None
        for option in (a for a in args if a is not type(None)):
            try:
                return _coerce(key, value, option)
            except ParamsError:
                continue
        raise ParamsError(f"params: {key} must be {_type_name(annotation)}, got {value!r}")
    if annotation is bool:
        if not isinstance(value, bool):
            raise ParamsError(f"params: {key} must be true or false, got {value!r}")
        return value
    if annotation is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ParamsError(f"params: {key} must be an integer, got {value!r}")
        return value
    if annotation is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ParamsError(f"params: {key} must be a number, got {value!r}")
        return float(value)
    if annotation is str:
        if not isinstance(value, str):
            raise ParamsError(f"params: {key} must be a string, got {value!r}")
        return value
    raise TypeError(f"unsupported annotation {annotation!r} for {key}")


def _build(cls: type, raw: dict[str, Any], prefix: str) -> Any:
    hints = get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(raw) - names)
    if unknown:
        keys = ", ".join(f"{prefix}{k}" for k in unknown)
        raise ParamsError(f"params: unknown key(s) {keys}; known: {', '.join(sorted(names))}")
    values: dict[str, Any] = {}
    for name in names & set(raw):
        annotation = hints[name]
        if dataclasses.is_dataclass(annotation):
            section = raw[name]
            if not isinstance(section, dict):
                raise ParamsError(f"params: {prefix}{name} must be a mapping of keys")
            values[name] = _build(annotation, section, f"{prefix}{name}.")
        else:
            values[name] = _coerce(f"{prefix}{name}", raw[name], annotation)
    return cls(**values)


def _lookup(params: Params, dotted: str) -> Any:
    value: Any = params
    for part in dotted.split("."):
        value = getattr(value, part)
    return value


def params_from_dict(raw: dict[str, Any]) -> Params:
    """Validate a parsed params mapping; missing keys take the documented defaults."""
    if not isinstance(raw, dict):
        raise ParamsError("params: the file must hold a mapping of keys")
    params = _build(Params, raw, "")
    for key, is_valid, expectation in _RULES:
        value = _lookup(params, key)
        if not is_valid(value):
            raise ParamsError(f"params: {key} must be {expectation}, got {value!r}")
    if params.data.validation_fraction + params.data.test_fraction >= 0.9:
        raise ParamsError("params: data.validation_fraction + data.test_fraction must be < 0.9")
    return params


def load_params(path: str | Path = "params.yaml") -> Params:
    """Read and validate ``params.yaml``; errors name the file and the key."""
    path = Path(path)
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except FileNotFoundError:
        raise ParamsError(f"{path}: file not found") from None
    except yaml.YAMLError as error:
        raise ParamsError(f"{path}: not valid YAML: {error}") from None
    try:
        return params_from_dict(raw)
    except ParamsError as error:
        raise ParamsError(f"{path}: {error}") from None
