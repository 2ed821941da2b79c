"""Dataset assets: one partition per category, images on storage plus a manifest table."""

import time

from dagster import (
    AssetExecutionContext,
    AssetKey,
    AssetsDefinition,
    DataVersion,
    MaterializeResult,
    MetadataValue,
    StaticPartitionsDefinition,
    asset,
)

from tiled_pipeline.data import DatasetSpec, materialize_category, source_fingerprint
from tiled_pipeline.defs.resources import StorageResource
from tiled_pipeline.defs.versions import code_version


def dataset_key(dataset_name: str) -> AssetKey:
    """Asset key of a dataset's category images."""
    return AssetKey(["datasets", dataset_name, "category_images"])


def dataset_partitions(spec: DatasetSpec) -> StaticPartitionsDefinition:
    """One static partition per selected category of the dataset."""
    return StaticPartitionsDefinition(list(spec.selected_categories()))


def build_dataset_asset(dataset_name: str, spec: DatasetSpec) -> AssetsDefinition:
    """The category-images asset of one configured dataset."""

    @asset(
        key=dataset_key(dataset_name),
        partitions_def=dataset_partitions(spec),
        group_name="datasets",
        code_version=code_version("category_images", spec),
        kinds={"parquet"},
        description=f"Images and manifest of one {spec.kind} category on storage.",
    )
    def category_images(context: AssetExecutionContext, storage: StorageResource):
        category = context.partition_key
        start = time.perf_counter()
        manifest = materialize_category(
            spec, category, storage.dataset(dataset_name), storage.downloads_dir()
        )
        counts = manifest.groupby(["split", "defect_type"]).size()
        context.log.info(
            f"{category}: {len(manifest)} images in {time.perf_counter() - start:.1f} s"
        )
        return MaterializeResult(
            data_version=DataVersion(source_fingerprint(spec, category)),
            metadata={
                "path": MetadataValue.path(str(storage.dataset(dataset_name) / category)),
                "n_images": len(manifest),
                "n_train": int((manifest["split"] == "train").sum()),
                "n_test": int((manifest["split"] == "test").sum()),
                "n_anomalous": int(manifest["label"].sum()),
                "image_size": f"{int(manifest['height'].max())}x{int(manifest['width'].max())}",
                "counts": MetadataValue.md(counts.rename("images").to_frame().to_markdown()),
            },
        )

    return category_images
