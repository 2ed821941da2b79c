"""Building models by name from plain parameters."""

from __future__ import annotations

import pytest

from tiled_pipeline.models import MODEL_NAMES, build_model, make_config
from tiled_pipeline.models.padim import Padim, PadimConfig
from tiled_pipeline.models.patchcore import Patchcore


def test_registry_builds_padim_and_patchcore_from_params() -> None:
    padim = build_model("padim", {"weights": "random", "layers": [1, 2], "n_features": 10})
    patchcore = build_model("patchcore", {"weights": "random", "backbone": "resnet18"})
    assert isinstance(padim, Padim) and isinstance(patchcore, Patchcore)
    # Lists from TOML/JSON become tuples, so the config stays hashable.
    assert padim.config == PadimConfig(weights="random", layers=(1, 2), n_features=10)
    assert patchcore.config.layers == (2, 3)
    assert {"padim", "patchcore"} <= set(MODEL_NAMES)


def test_build_model_rejects_unknown_params() -> None:
    with pytest.raises(
        ValueError, match=r"unknown parameter\(s\) \['n_feature'\] for model 'padim'"
    ):
        build_model("padim", {"weights": "random", "n_feature": 10})


def test_build_model_rejects_unknown_model() -> None:
    with pytest.raises(ValueError, match=r"model='padin' is unknown; expected one of"):
        build_model("padin", {})


def test_make_config_checks_values_without_building_a_backbone() -> None:
    with pytest.raises(ValueError, match=r"coreset_ratio must be in \(0, 1\], got 1.5"):
        make_config("patchcore", {"coreset_ratio": 1.5})
    assert make_config("padim", {}).weights == "timm"
