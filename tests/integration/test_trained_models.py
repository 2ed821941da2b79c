"""FastFlow and Reverse Distillation through the same asset graph, on tiny data."""

import pytest
from dagster import DagsterInstance

from tiled_pipeline import storage as io
from tiled_pipeline.defs.resources import StorageResource
from tiled_pipeline.defs.runner import run_experiment
from tiled_pipeline.experiments import parse_config

pytestmark = pytest.mark.slow

TINY = {"backbone": "resnet18", "weights": "random", "epochs": 1, "batch_size": 4}


@pytest.mark.parametrize(
    ("model", "params"),
    [
        ("fastflow", {**TINY, "flow_steps": 2}),
        ("reverse_distillation", TINY),
    ],
)
def test_trained_models_ens_graph_materializes(model, params, tmp_path):
    raw = {
        "datasets": {
            "tiny": {
                "kind": "synthetic",
                "categories": ["wood"],
                "image_size": 128,
                "n_train": 4,
                "n_test_good": 2,
                "n_test_defect": 3,
            }
        },
        "experiments": [
            {
                "name": f"{model}_ens4",
                "dataset": "tiny",
                "model": model,
                "setup": "ENS4",
                "image_size": 64,
                "tile_size": 32,
                "stride": 32,
                "model_params": params,
            }
        ],
    }
    config = parse_config(raw)
    storage = StorageResource(root=str(tmp_path / "storage"))
    with DagsterInstance.ephemeral() as instance:
        summary = run_experiment(config=config, storage=storage, instance=instance)
    assert summary.succeeded, summary.failed
    table = summary.reports["wood"]
    assert {"image_auroc", "pixel_aupro"} <= set(table.columns)
    for tile in config.experiments[0].tile_keys:
        folder = io.current_version(
            storage.partition(f"{model}_ens4", "tile_model", "wood", tile), "m"
        )
        checkpoint = io.load_checkpoint(folder / "model.pt")
        assert checkpoint["model"] == model
        assert checkpoint["config"]["epochs"] == 1
