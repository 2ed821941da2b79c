import os

import pytest

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
