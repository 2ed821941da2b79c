"""Per-tile assets of an experiment: crops, model and predictions, one partition per tile model."""

import time
import warnings

import numpy as np
import pandas as pd
from dagster import (
    AssetDep,
    AssetExecutionContext,
    AssetKey,
    AssetsDefinition,
    BetaWarning,
    MaterializeResult,
    MetadataValue,
    MultiPartitionsDefinition,
    MultiToSingleDimensionPartitionMapping,
    StaticPartitionsDefinition,
    asset,
)

from tiled_pipeline import storage as io
from tiled_pipeline.data import read_manifest
from tiled_pipeline.defs.conditions import CASCADE
from tiled_pipeline.defs.datasets import dataset_key
from tiled_pipeline.defs.resources import DeviceResource, StorageResource
from tiled_pipeline.defs.versions import code_version
from tiled_pipeline.experiments import Experiment
from tiled_pipeline.models import load_model
from tiled_pipeline.pipeline.crops import SPLITS, tile_key_crops
from tiled_pipeline.pipeline.modeling import fit_tile_model, predict_crops

with warnings.catch_warnings():
    # Beta in dagster 1.13; the mapping is the documented way to fan (category, tile) in and out.
    warnings.simplefilter("ignore", BetaWarning)
    BY_CATEGORY = MultiToSingleDimensionPartitionMapping(partition_dimension_name="category")


# Tags of the model steps for scale-out engines (see deploy/README.md): the Celery executor routes
# them to the `gpu` queue; the k8s_job_executor gives their pods one GPU. Ignored locally.
GPU_STEP_TAGS = {
    "dagster-celery/queue": "gpu",
    "dagster-k8s/config": {
        "container_config": {"resources": {"limits": {"nvidia.com/gpu": 1}}},
        "pod_spec_config": {
            "tolerations": [{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}]
        },
    },
}


def tile_partitions(experiment: Experiment) -> MultiPartitionsDefinition:
    """category x tile; tile keys carry the grid so different grids never share a key."""
    return MultiPartitionsDefinition(
        {
            "category": StaticPartitionsDefinition(list(experiment.categories)),
            "tile": StaticPartitionsDefinition(list(experiment.tile_keys)),
        }
    )


def stage_key(experiment: Experiment, stage: str) -> AssetKey:
    """Asset key ``[<experiment>, <stage>]``."""
    return AssetKey([experiment.name, stage])


def partition_of(context: AssetExecutionContext, experiment: Experiment) -> tuple[str, str]:
    """(category, tile) of the running partition, validated against the experiment."""
    keys = context.partition_key.keys_by_dimension
    category, tile = keys["category"], keys["tile"]
    if tile not in experiment.tile_keys:
        raise ValueError(f"tile={tile!r} is not in {experiment.name}: {experiment.tile_keys}")
    return category, tile


def build_crops_asset(experiment: Experiment) -> AssetsDefinition:
    """Crops of one tile position (or all, for a shared model) for train and test images."""

    @asset(
        key=stage_key(experiment, "tiled_crops"),
        partitions_def=tile_partitions(experiment),
        deps=[AssetDep(dataset_key(experiment.dataset_name), partition_mapping=BY_CATEGORY)],
        automation_condition=CASCADE,
        group_name=experiment.name,
        code_version=code_version(
            "tiled_crops",
            experiment.dataset,
            experiment.setup,
            experiment.merge.tile_mode,
            experiment.evaluation.stats_source,
            experiment.evaluation.heldout_fraction,
            experiment.seed,
        ),
        kinds={"numpy"},
        description="uint8 crops of this tile key's positions, train/holdout/test, with masks.",
    )
    def tiled_crops(context: AssetExecutionContext, storage: StorageResource):
        category, tile = partition_of(context, experiment)
        manifest = read_manifest(
            storage.dataset(experiment.dataset_name) / category / "manifest.parquet"
        )
        crops = tile_key_crops(experiment, manifest, tile)
        folder = storage.partition(experiment.name, "tiled_crops", category, tile)
        version = io.new_version(folder)
        io.save_table(version / "index.parquet", crops.index)
        for split in SPLITS:
            io.save_array(version / f"{split}.npy", crops.images[split])
            io.save_array(version / f"{split}_masks.npy", crops.masks[split])
        io.commit_version(folder, version)
        return MaterializeResult(
            metadata={
                "path": MetadataValue.path(str(version)),
                **{f"n_{s}": len(crops.images[s]) for s in SPLITS},
                "crop_shape": str(tuple(crops.images["train"].shape[1:])),
                "positions": str(experiment.positions(tile)),
            }
        )

    return tiled_crops


def build_model_asset(experiment: Experiment) -> AssetsDefinition:
    """One trained model per tile key; runs in the ``gpu`` concurrency pool."""

    @asset(
        key=stage_key(experiment, "tile_model"),
        partitions_def=tile_partitions(experiment),
        deps=[stage_key(experiment, "tiled_crops")],
        automation_condition=CASCADE,
        group_name=experiment.name,
        code_version=code_version(
            "tile_model", experiment.model, experiment.model_params, experiment.batch_size
        ),
        pool="gpu",
        op_tags=GPU_STEP_TAGS,
        kinds={"pytorch"},
        description=f"A fitted {experiment.model} model for this tile key.",
    )
    def tile_model(
        context: AssetExecutionContext, storage: StorageResource, device: DeviceResource
    ):
        category, tile = partition_of(context, experiment)
        crops = io.current_version(
            storage.partition(experiment.name, "tiled_crops", category, tile), "tiled crops"
        )
        train = io.load_array(crops / "train.npy")
        model, report = fit_tile_model(
            experiment.model,
            experiment.params,
            train,
            experiment.batch_size,
            device.torch_device(),
        )
        folder = storage.partition(experiment.name, "tile_model", category, tile)
        version = io.new_version(folder)
        io.save_checkpoint(version / "model.pt", model.checkpoint())
        io.commit_version(folder, version, {"fit_seconds": report.seconds})
        metadata = {
            "path": MetadataValue.path(str(version / "model.pt")),
            "n_train_crops": report.n_images,
            "fit_seconds": round(report.seconds, 2),
            "device": str(model.device),
            "parameters_m": round(sum(p.numel() for p in model.parameters()) / 1e6, 3),
        }
        if report.losses:
            metadata["loss_curve"] = MetadataValue.json([round(x, 6) for x in report.losses])
            metadata["final_loss"] = float(report.losses[-1])
        return MaterializeResult(metadata=metadata)

    return tile_model


def build_predictions_asset(experiment: Experiment) -> AssetsDefinition:
    """The tile model's maps (float16) and scores for test and held-out images."""

    @asset(
        key=stage_key(experiment, "tile_predictions"),
        partitions_def=tile_partitions(experiment),
        deps=[stage_key(experiment, "tile_model"), stage_key(experiment, "tiled_crops")],
        automation_condition=CASCADE,
        group_name=experiment.name,
        code_version=code_version("tile_predictions", experiment.batch_size),
        pool="gpu",
        op_tags=GPU_STEP_TAGS,
        kinds={"numpy", "parquet"},
        description="Anomaly maps (float16 .npy) and tile scores (parquet) of this tile key.",
    )
    def tile_predictions(
        context: AssetExecutionContext, storage: StorageResource, device: DeviceResource
    ):
        category, tile = partition_of(context, experiment)

        def part(stage: str):
            return storage.partition(experiment.name, stage, category, tile)

        crops = io.current_version(part("tiled_crops"), "tiled crops")
        checkpoint = io.load_checkpoint(
            io.current_version(part("tile_model"), "tile model") / "model.pt"
        )
        model = load_model(checkpoint).to(device.torch_device())
        index = io.load_table(crops / "index.parquet")
        start = time.perf_counter()
        version = io.new_version(part("tile_predictions"))
        tables = []
        for split in ("holdout", "test"):
            result = predict_crops(
                model, io.load_array(crops / f"{split}.npy"), experiment.batch_size
            )
            io.save_array(version / f"{split}_maps.npy", result.maps)
            tables.append(
                scores_table(index[index["split"] == split], result.scores, experiment, tile)
            )
        io.save_table(version / "scores.parquet", pd.concat(tables, ignore_index=True))
        io.commit_version(part("tile_predictions"), version)
        seconds = time.perf_counter() - start
        scores = tables[-1]
        return MaterializeResult(
            metadata={
                "path": MetadataValue.path(str(version)),
                "n_test": int(scores["image_path"].nunique()),
                "predict_seconds": round(seconds, 2),
                "score_mean_good": float(scores.loc[scores["label"] == 0, "score"].mean()),
                "score_mean_defect": float(scores.loc[scores["label"] == 1, "score"].mean()),
            }
        )

    return tile_predictions


def scores_table(
    rows: pd.DataFrame, scores: np.ndarray, experiment: Experiment, tile: str
) -> pd.DataFrame:
    """Long table: one row per (image, position) with its tile score."""
    positions = experiment.positions(tile)
    frames = []
    for p, position in enumerate(positions):
        frame = (
            rows[["split", "image_path", "label", "defect_type", "mask_path"]]
            .reset_index(drop=True)
            .copy()
        )
        frame["position"] = position
        frame["score"] = scores[:, p] if len(scores) else np.zeros(0, np.float32)
        frames.append(frame)
    return pd.concat(frames, ignore_index=True)
