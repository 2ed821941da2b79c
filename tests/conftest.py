import os

import pytest

from tiled_pipeline.experiments import parse_config

os.environ.setdefault("DAGSTER_DISABLE_TELEMETRY", "1")

TINY_CONFIG = """
[datasets.tiny]
kind = "synthetic"
categories = ["weave", "speckle"]
image_size = 128
n_train = 6
n_test_good = 3
n_test_defect = 4

[[experiments]]
name = "tiny_ens4"
dataset = "tiny"
model = "padim"
setup = "ENS4"
image_size = 64
tile_size = 32
stride = 32
model_params = { backbone = "resnet18", weights = "random", layers = [1, 2], n_features = 16 }

[[experiments]]
name = "tiny_st9"
dataset = "tiny"
model = "padim"
setup = "ST9"
image_size = 64
tile_size = 32
stride = 16
model_params = { backbone = "resnet18", weights = "random", layers = [1, 2], n_features = 16 }
"""


@pytest.fixture
def tiny_config_path(tmp_path):
    """A TOML experiments file with tiny synthetic images and tiny random-weight models."""
    path = tmp_path / "experiments.toml"
    path.write_text(TINY_CONFIG)
    return path


@pytest.fixture
def make_experiment():
    """Builds one PaDiM experiment on an 8x8 working image cut into 2x2 tiles of 4."""

    def make(**fields):
        experiment = {
            "name": "e",
            "dataset": "d",
            "model": "padim",
            "setup": "ENS4",
            "image_size": 8,
            "tile_size": 4,
            "stride": 4,
            **fields,
        }
        raw = {"datasets": {"d": {"kind": "synthetic"}}, "experiments": [experiment]}
        return parse_config(raw).experiments[0]

    return make
