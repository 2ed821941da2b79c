"""One measured phase of one (model, setup) run, executed in a fresh process.

``bench_setups.py`` starts this file as ``python _measure.py JOB.json RESULT.json``, once for the
fit phase and once for the predict phase of every (model, setup, repeat), so that each phase's
peak resident memory is its own: ``VmHWM`` of ``/proc/self/status`` is the high-water mark of
this process's address space, which starts empty at ``exec`` (unlike ``ru_maxrss``, which Linux
carries over from the pre-``exec`` parent and so can report the parent's size).

Phases, reproducing the asset chain of ``tiled_pipeline.defs`` without Dagster:

- ``fit``: for each tile key in turn: crops -> fit -> checkpoint and test crops to ``run_dir``;
  the model and its crops are dropped before the next key, as separate tile partitions would.
- ``predict``: for each tile key: checkpoint -> model -> maps and scores of the holdout and test
  crops, stored per key; then (optionally) gather into (N, T, th, tw) -> merge -> evaluate.
"""

from __future__ import annotations

import gc
import json
import logging
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd
import torch
from upath import UPath

from tiled_pipeline import storage as io
from tiled_pipeline.data import read_manifest
from tiled_pipeline.experiments import Experiment, parse_config
from tiled_pipeline.models import load_model
from tiled_pipeline.pipeline.crops import tile_key_crops
from tiled_pipeline.pipeline.gather import gather_split
from tiled_pipeline.pipeline.modeling import fit_tile_model, predict_crops
from tiled_pipeline.pipeline.scoring import evaluate_category, merge_category

logger = logging.getLogger(__name__)

MB = 1024 * 1024
PREDICTED_SPLITS = ("holdout", "test")


@dataclass(frozen=True)
class Job:
    """What one child process does.

    Attributes:
        phase: ``fit`` or ``predict``.
        config: the raw experiments document (``parse_config`` input) holding ``experiment``.
        experiment: name of the experiment to run.
        category: the dataset category.
        manifest: path of the category's ``manifest.parquet``.
        run_dir: folder of this run's checkpoints, crops and predictions (shared by both phases).
        threads: torch intra-op threads.
        device: ``cpu`` or ``cuda``.
        evaluate: merge and evaluate after predicting (predict phase only).
    """

    phase: Literal["fit", "predict"]
    config: dict[str, Any]
    experiment: str
    category: str
    manifest: str
    run_dir: str
    threads: int
    device: str
    evaluate: bool


def status_mb(field: str) -> float:
    """A memory field of ``/proc/self/status`` (``VmHWM``, ``VmRSS``) in MiB."""
    with open("/proc/self/status") as handle:
        for line in handle:
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024  # the kernel reports kB
    raise ValueError(f"field={field!r} is not in /proc/self/status; use VmHWM or VmRSS")


def cuda_peak_mb(device: torch.device) -> float | None:
    """``torch.cuda.max_memory_allocated`` in MiB on a CUDA device, else None."""
    if device.type != "cuda":
        return None
    torch.cuda.synchronize(device)
    return torch.cuda.max_memory_allocated(device) / MB


def fit_phase(job: Job, experiment: Experiment, device: torch.device) -> dict[str, Any]:
    """Fit every tile model in turn.

    ``fit_s`` is the wall time of ``fit_tile_model`` (model build with its backbone weights, then
    fit) summed over the tile keys; ``model_fit_s`` is the models' own fit time. Neither includes
    the crops (``crop_s``) nor the checkpoint writes. ``fit_rss_mb`` is the high-water mark after
    the last fit, ``fit_rss_1tile_mb`` after the first (crops included, as the asset loads them).
    """
    manifest = read_manifest(UPath(job.manifest))
    fit_s = crop_s = model_fit_s = fit_cpu_s = 0.0
    first_tile_mb = None
    ckpt_bytes = n_crops = 0
    epochs: list[float] = []
    for tile in experiment.tile_keys:
        start = time.perf_counter()
        crops = tile_key_crops(experiment, manifest, tile)
        crop_s += time.perf_counter() - start
        start, cpu = time.perf_counter(), time.process_time()
        model, report = fit_tile_model(
            experiment.model,
            experiment.params,
            crops.images["train"],
            experiment.batch_size,
            device,
        )
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        fit_s += time.perf_counter() - start
        fit_cpu_s += time.process_time() - cpu
        first_tile_mb = first_tile_mb or status_mb("VmHWM")
        model_fit_s += report.seconds
        n_crops += report.n_images
        epochs.append(report.extra.get("epochs_run", 1.0))
        ckpt_bytes += save_tile(Path(job.run_dir) / tile, model, crops)
        del model, crops
        gc.collect()
    return {
        "fit_s": fit_s,
        "model_fit_s": model_fit_s,
        "fit_cpu_s": fit_cpu_s,
        "crop_s": crop_s,
        "n_tile_models": len(experiment.tile_keys),
        "n_train_crops": n_crops,
        "epochs_run": float(np.median(epochs)),
        "fit_rss_1tile_mb": first_tile_mb,
        "fit_rss_mb": status_mb("VmHWM"),
        "fit_cuda_mb": cuda_peak_mb(device),
        "ckpt_mb": ckpt_bytes / MB,
    }


def save_tile(folder: Path, model: torch.nn.Module, crops: Any) -> int:
    """Write a tile's checkpoint (streamed, no in-memory copy) and its crops; returns bytes."""
    folder.mkdir(parents=True, exist_ok=True)
    torch.save(model.checkpoint(), folder / "model.pt")
    crops.index.to_parquet(folder / "index.parquet", index=False)
    for split in PREDICTED_SPLITS:
        np.save(folder / f"{split}.npy", crops.images[split])
    return (folder / "model.pt").stat().st_size


def predict_phase(job: Job, experiment: Experiment, device: torch.device) -> dict[str, Any]:
    """Predict with every tile model in turn, then merge and evaluate when asked."""
    predict_s = predict_cpu_s = 0.0
    for tile in experiment.tile_keys:
        folder = Path(job.run_dir) / tile
        checkpoint = torch.load(folder / "model.pt", map_location="cpu", weights_only=True)
        model = load_model(checkpoint).to(device)
        del checkpoint
        index = pd.read_parquet(folder / "index.parquet")
        tables = []
        for split in PREDICTED_SPLITS:
            crops = np.load(folder / f"{split}.npy")
            start, cpu = time.perf_counter(), time.process_time()
            result = predict_crops(model, crops, experiment.batch_size)
            predict_s += time.perf_counter() - start
            predict_cpu_s += time.process_time() - cpu
            io.save_array(UPath(folder) / f"{split}_maps.npy", result.maps)
            rows = index[index["split"] == split]
            tables.append(scores_table(rows, result.scores, experiment.positions(tile)))
        io.save_table(UPath(folder) / "scores.parquet", pd.concat(tables, ignore_index=True))
        del model
        gc.collect()
    result = {
        "predict_s": predict_s,
        "predict_cpu_s": predict_cpu_s,
        "predict_rss_mb": status_mb("VmHWM"),
        "predict_cuda_mb": cuda_peak_mb(device),
    }
    if job.evaluate:
        result.update(evaluate_run(job, experiment))
    return result


def scores_table(rows: pd.DataFrame, scores: np.ndarray, positions: tuple[int, ...]):
    """One row per (image, position) with its tile score, the layout ``gather_split`` reads."""
    columns = ["split", "image_path", "label", "defect_type", "mask_path"]
    frames = []
    for p, position in enumerate(positions):
        frame = rows[columns].reset_index(drop=True).copy()
        frame["position"] = position
        frame["score"] = scores[:, p] if len(scores) else np.zeros(0, np.float32)
        frames.append(frame)
    return pd.concat(frames, ignore_index=True)


def evaluate_run(job: Job, experiment: Experiment) -> dict[str, Any]:
    """Gather -> merge -> evaluate; the overall metrics and the pixel AUPRO per defect type."""
    start = time.perf_counter()
    version_of = lambda tile: UPath(job.run_dir) / tile  # noqa: E731
    test = gather_split(experiment, "test", version_of)
    holdout = gather_split(experiment, "holdout", version_of)
    merged = merge_category(experiment, test, holdout)
    report = evaluate_category(
        experiment,
        merged.maps,
        merged.masks,
        merged.scores,
        merged.stats,
        merged.predicted_masks,
        title=f"{experiment.name} / {job.category}",
    )
    table = report.table[report.table["image_score"] == "map_max"].set_index("defect_type")
    metrics = {m: float(table.loc["all", m]) for m in ("image_auroc", "pixel_auroc", "pixel_aupro")}
    for defect in table.index.drop("all"):
        metrics[f"aupro_{defect}"] = float(table.loc[defect, "pixel_aupro"])
    return {
        "eval_s": time.perf_counter() - start,
        "map_size": int(merged.maps.shape[-1]),
        "n_test_images": int(merged.maps.shape[0]),
        "metrics": metrics,
    }


def run_job(job: Job) -> dict[str, Any]:
    """Run one phase; returns its measurements as plain data."""
    torch.set_num_threads(job.threads)
    device = torch.device(job.device)
    experiment = parse_config(job.config).experiment(job.experiment)
    base = {
        "phase": job.phase,
        "threads": torch.get_num_threads(),
        "base_rss_mb": status_mb("VmRSS"),
    }
    phase = fit_phase if job.phase == "fit" else predict_phase
    return {**base, **phase(job, experiment, device)}


def main(argv: list[str]) -> int:
    """``_measure.py JOB.json RESULT.json``: run the job, write its result."""
    if len(argv) != 2:
        raise ValueError(f"expected arguments JOB.json RESULT.json, got {argv}")
    logging.basicConfig(level=os.environ.get("BENCH_LOG_LEVEL", "WARNING"))
    job = Job(**json.loads(Path(argv[0]).read_text()))
    result = run_job(job)
    Path(argv[1]).write_text(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
