"""Anomaly models behind one interface, built by name from explicit parameters."""

from __future__ import annotations

import dataclasses
import importlib
from collections.abc import Mapping
from typing import Any

from tiled_pipeline.models.base import AnomalyModel, FitReport, Prediction

# name -> (module, model class, config class); imported lazily so that importing the package
# does not pull in every model's code.
_REGISTRY: dict[str, tuple[str, str, str]] = {
    "padim": ("tiled_pipeline.models.padim", "Padim", "PadimConfig"),
    "patchcore": ("tiled_pipeline.models.patchcore", "Patchcore", "PatchcoreConfig"),
    "fastflow": ("tiled_pipeline.models.fastflow", "Fastflow", "FastflowConfig"),
    "reverse_distillation": (
        "tiled_pipeline.models.reverse_distillation",
        "ReverseDistillation",
        "ReverseDistillationConfig",
    ),
}
MODEL_NAMES: tuple[str, ...] = tuple(_REGISTRY)

__all__ = ["MODEL_NAMES", "AnomalyModel", "FitReport", "Prediction", "build_model", "load_model"]


def model_classes(name: str) -> tuple[type[AnomalyModel], type]:
    """The (model class, config class) registered under ``name``."""
    if name not in _REGISTRY:
        raise ValueError(f"model={name!r} is unknown; expected one of {list(MODEL_NAMES)}")
    module_name, model_name, config_name = _REGISTRY[name]
    module = importlib.import_module(module_name)
    return getattr(module, model_name), getattr(module, config_name)


def make_config(name: str, params: Mapping[str, Any]) -> Any:
    """Build the frozen config of model ``name``; unknown parameter names are an error."""
    _, config_class = model_classes(name)
    fields = {field.name: field for field in dataclasses.fields(config_class)}
    unknown = sorted(set(params) - set(fields))
    if unknown:
        raise ValueError(
            f"unknown parameter(s) {unknown} for model {name!r}; accepted: {sorted(fields)}"
        )
    # Lists from TOML/JSON become tuples so the config stays hashable and frozen.
    values = {k: tuple(v) if isinstance(v, list) else v for k, v in params.items()}
    return config_class(**values)


def build_model(name: str, params: Mapping[str, Any]) -> AnomalyModel:
    """A fresh, unfitted model ``name`` with ``params`` overriding its config defaults."""
    model_class, _ = model_classes(name)
    return model_class(make_config(name, params))


def load_model(checkpoint: Mapping[str, Any]) -> AnomalyModel:
    """Rebuild a fitted model from ``AnomalyModel.checkpoint()`` output.

    The checkpoint holds every weight, the frozen backbone's included, so the model is built
    with random backbone weights and then overwritten: loading never needs the network or the
    original weights file.
    """
    config = dict(checkpoint["config"])
    if "weights" in config:
        config["weights"] = "random"
    model = build_model(checkpoint["model"], config)
    model.config = make_config(checkpoint["model"], checkpoint["config"])
    model.load_state_dict(checkpoint["state"], strict=True)
    return model
