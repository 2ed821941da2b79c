"""Wall time, peak memory and accuracy of the paper's setups on one synthetic category.

For each model and setup (SM256, SM512, ENS4, ENS9; ST4/ST9 with ``--with-st``) the fit phase
and the predict phase each run in a fresh process (``_measure.py``), ``--repeats`` times,
interleaved so that the setups of one repeat run side by side. Medians are reported, with the
peak resident memory of each setup as a ratio to SM256 of the same model.

Usage (from the repository root)::

    .venv/bin/python bench/bench_setups.py                      # PaDiM and PatchCore
    .venv/bin/python bench/bench_setups.py --quick --repeats 1  # smoke run
    .venv/bin/python bench/bench_setups.py --models fastflow reverse_distillation \\
        --name setups_trained

Writes ``bench/results/<name>.csv`` (medians), ``<name>_runs.csv`` (every repeat) and
``<name>.md`` (environment and tables), and prints the markdown tables.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from upath import UPath

from tiled_pipeline.data import DatasetSpec, materialize_category
from tiled_pipeline.experiments import SETUPS, parse_config

logger = logging.getLogger("bench_setups")

HERE = Path(__file__).resolve().parent
MEASURE = HERE / "_measure.py"
BASE_SETUPS = ("SM256", "SM512", "ENS4", "ENS9")
ST_SETUPS = ("ST4", "ST9")
TRAINED_SETUPS = ("SM256", "ENS9")
TRAINED_MODELS = ("fastflow", "reverse_distillation")
BACKBONE = {"backbone": "tf_efficientnet_lite0", "weights": "package"}
LAYERS = {"padim": [1, 2, 3], "patchcore": [2, 3], "fastflow": [1, 2, 3]}
QUICK_COUNTS = {"n_train": 8, "n_test_good": 3, "n_test_defect": 6}
FULL_COUNTS = {"n_train": 32, "n_test_good": 8, "n_test_defect": 16}


@dataclass(frozen=True)
class Options:
    """Parsed command line (see ``parse_args`` for each option)."""

    models: tuple[str, ...]
    setups: tuple[str, ...] | None
    with_st: bool
    category: str
    repeats: int
    threads: int
    epochs: int
    device: str
    quick: bool
    workdir: Path | None
    name: str
    results: Path
    keep_runs: bool


def parse_args(argv: list[str] | None = None) -> Options:
    """Command-line options -> ``Options``; bad values exit with argparse's message."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", nargs="+", default=["padim", "patchcore"])
    parser.add_argument("--setups", nargs="+", choices=list(SETUPS), default=None,
                        help="override the setups of every model")  # fmt: skip
    parser.add_argument("--with-st", action="store_true", help="add ST4 and ST9")
    parser.add_argument("--category", default="weave")
    parser.add_argument("--repeats", type=int, default=None, help="default 3, 1 with --quick")
    parser.add_argument("--threads", type=int, default=2, help="torch intra-op threads")
    parser.add_argument("--epochs", type=int, default=2, help="epochs of the trained models")
    parser.add_argument("--device", choices=["auto", "cpu", "cuda"], default="auto")
    parser.add_argument("--quick", action="store_true", help="fewer images, for a smoke run")
    parser.add_argument("--workdir", type=Path, default=None, help="dataset cache and runs")
    parser.add_argument("--name", default="setups", help="stem of the result files")
    parser.add_argument("--results", type=Path, default=HERE / "results")
    parser.add_argument("--keep-runs", action="store_true", help="keep checkpoints and maps")
    args = parser.parse_args(argv)
    for name in ("repeats", "threads", "epochs"):
        value = getattr(args, name)
        if value is not None and value < 1:
            parser.error(f"--{name} must be >= 1, got {value}")
    repeats = args.repeats or (1 if args.quick else 3)
    device = args.device
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    return Options(
        models=tuple(args.models),
        setups=tuple(args.setups) if args.setups else None,
        with_st=args.with_st,
        category=args.category,
        repeats=repeats,
        threads=args.threads,
        epochs=args.epochs,
        device=device,
        quick=args.quick,
        workdir=args.workdir,
        name=args.name,
        results=args.results,
        keep_runs=args.keep_runs,
    )


def setups_of(model: str, options: Options) -> tuple[str, ...]:
    """The setups run for ``model``: SM256 and ENS9 for trained models, else the four base ones."""
    if options.setups:
        return options.setups
    base = TRAINED_SETUPS if model in TRAINED_MODELS else BASE_SETUPS
    return base + (ST_SETUPS if options.with_st else ())


def model_params(model: str, epochs: int) -> dict[str, Any]:
    """Offline ImageNet backbone (EfficientNet-Lite0 from its PyPI package) for every model."""
    params: dict[str, Any] = {**BACKBONE, "layers": LAYERS.get(model, [1, 2, 3])}
    if model in TRAINED_MODELS:
        params["epochs"] = epochs
    return params


def experiment_name(model: str, setup: str) -> str:
    """``padim_ens9`` style names."""
    return f"{model}_{setup.lower()}"


def build_config(options: Options) -> dict[str, Any]:
    """The experiments document of every (model, setup) pair, for ``parse_config``."""
    counts = QUICK_COUNTS if options.quick else FULL_COUNTS
    dataset = {"kind": "synthetic", "categories": [options.category], "image_size": 1024}
    experiments = [
        {
            "name": experiment_name(model, setup),
            "dataset": "bench",
            "model": model,
            "setup": setup,
            "model_params": model_params(model, options.epochs),
        }
        for model in options.models
        for setup in setups_of(model, options)
    ]
    return {"datasets": {"bench": {**dataset, **counts}}, "experiments": experiments}


def prepare_dataset(config: dict[str, Any], category: str, workdir: Path) -> Path:
    """Generate (or reuse) the category once, before any timing; returns the manifest path."""
    raw = config["datasets"]["bench"]
    spec = DatasetSpec(**{k: tuple(v) if isinstance(v, list) else v for k, v in raw.items()})
    # One folder per image counts, so a quick run never invalidates the full run's cache.
    folder = workdir / "data" / f"n{spec.n_train}_{spec.n_test_good}_{spec.n_test_defect}"
    start = time.perf_counter()
    manifest = materialize_category(spec, category, UPath(folder), workdir / "downloads")
    logger.info(
        "dataset %s: %d images of %dpx ready in %.1f s (excluded from timings)",
        category, len(manifest), spec.image_size, time.perf_counter() - start,
    )  # fmt: skip
    return folder / category / "manifest.parquet"


def run_child(job: dict[str, Any], folder: Path, threads: int) -> dict[str, Any]:
    """Run one phase in a fresh interpreter; returns its result or raises with its stderr."""
    folder.mkdir(parents=True, exist_ok=True)
    job_path, result_path = folder / f"{job['phase']}_job.json", folder / f"{job['phase']}.json"
    job_path.write_text(json.dumps(job))
    env = {**os.environ, "TQDM_DISABLE": "1"}
    env.update({k: str(threads) for k in ("OMP_NUM_THREADS", "MKL_NUM_THREADS")})
    command = [sys.executable, str(MEASURE), str(job_path), str(result_path)]
    done = subprocess.run(command, env=env, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise RuntimeError(
            f"{job['experiment']} {job['phase']} failed (exit {done.returncode}):\n"
            f"{done.stderr[-4000:]}"
        )
    return json.loads(result_path.read_text())


def run_once(
    options: Options,
    config: dict[str, Any],
    name: str,
    manifest: Path,
    run_dir: Path,
    evaluate: bool,
) -> dict[str, Any]:
    """Fit then predict one experiment, each phase in its own process; one row of results."""
    job = {
        "config": config,
        "experiment": name,
        "category": options.category,
        "manifest": str(manifest),
        "run_dir": str(run_dir),
        "threads": options.threads,
        "device": options.device,
        "evaluate": evaluate,
    }
    fit = run_child({**job, "phase": "fit"}, run_dir, options.threads)
    predict = run_child({**job, "phase": "predict"}, run_dir, options.threads)
    metrics = predict.pop("metrics", {})
    return {**prefixed(fit, "fit"), **prefixed(predict, "predict"), **metrics}


def prefixed(result: dict[str, Any], phase: str) -> dict[str, Any]:
    """A phase's result with its shared keys (threads, base RSS) named after the phase."""
    shared = ("threads", "base_rss_mb")
    return {f"{phase}_{k}" if k in shared else k: v for k, v in result.items() if k != "phase"}


def measure(
    options: Options, config: dict[str, Any], manifest: Path, workdir: Path
) -> pd.DataFrame:
    """Every (repeat, model, setup) run, setups interleaved within a repeat; one row each."""
    experiments = {e.name: e for e in parse_config(config).experiments}
    rows = []
    total = options.repeats * len(experiments)
    for repeat in range(options.repeats):
        for name, experiment in experiments.items():
            run_dir = workdir / "runs" / f"{name}_r{repeat}"
            load = os.getloadavg()[0]
            # Metrics are deterministic (seeded models); they are computed on the first repeat.
            row = run_once(options, config, name, manifest, run_dir, evaluate=repeat == 0)
            if not options.keep_runs:
                shutil.rmtree(run_dir, ignore_errors=True)
            plan = experiment.plan
            rows.append(
                {
                    "model": experiment.model,
                    "setup": experiment.setup.name,
                    "grid": f"{plan.grid[0]}x{plan.grid[1]}",
                    "repeat": repeat,
                    "loadavg_1min": load,
                    **row,
                }
            )
            logger.info(
                "[%d/%d] %s r%d: fit %.1f s (peak %.0f MB), predict %.1f s (peak %.0f MB)",
                len(rows), total, name, repeat, row["fit_s"], row["fit_rss_mb"],
                row["predict_s"], row["predict_rss_mb"],
            )  # fmt: skip
    return pd.DataFrame(rows)


MEDIAN_COLUMNS = (
    "fit_s", "model_fit_s", "fit_cpu_s", "crop_s", "predict_s", "predict_cpu_s",
    "fit_rss_mb", "fit_rss_1tile_mb", "predict_rss_mb", "fit_base_rss_mb", "predict_base_rss_mb",
    "fit_cuda_mb", "predict_cuda_mb", "ckpt_mb",
)  # fmt: skip
FIRST_COLUMNS = ("grid", "n_tile_models", "n_train_crops", "epochs_run", "map_size", "eval_s")


def summarize(runs: pd.DataFrame) -> pd.DataFrame:
    """Medians over repeats per (model, setup), ratios to SM256, metrics of the first repeat."""
    rows = []
    for (model, setup), group in runs.groupby(["model", "setup"], sort=False):
        first = group.sort_values("repeat").iloc[0]
        row = {"model": model, "setup": setup, "repeats": len(group)}
        row.update({c: first[c] for c in FIRST_COLUMNS if c in group})
        for column in MEDIAN_COLUMNS:
            values = group[column].dropna() if column in group else pd.Series(dtype=float)
            row[column] = float(np.median(values)) if len(values) else np.nan
        metrics = [c for c in group if c.startswith(("image_", "pixel_", "aupro_"))]
        row.update({c: first[c] for c in metrics})
        rows.append(row)
    table = pd.DataFrame(rows)
    table["s_per_epoch_tile"] = table["model_fit_s"] / (
        table["epochs_run"] * table["n_tile_models"]
    )
    table.loc[~table["model"].isin(TRAINED_MODELS), "s_per_epoch_tile"] = np.nan
    return add_ratios(table)


def add_ratios(table: pd.DataFrame) -> pd.DataFrame:
    """Peak memory of each setup over SM256 of the same model, gross and net of the base RSS."""
    table = table.copy()
    for phase in ("fit", "predict"):
        peak, base = table[f"{phase}_rss_mb"], table[f"{phase}_base_rss_mb"]
        ref = table[table["setup"] == "SM256"].set_index("model")
        ref_peak = table["model"].map(ref[f"{phase}_rss_mb"])
        ref_base = table["model"].map(ref[f"{phase}_base_rss_mb"])
        table[f"{phase}_ratio"] = peak / ref_peak
        table[f"{phase}_ratio_net"] = (peak - base) / (ref_peak - ref_base)
    return table


def environment(
    options: Options, runs: pd.DataFrame, seconds: float, loads: list[float]
) -> dict[str, Any]:
    """What the figures were measured on."""
    env = {
        "date_utc": time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime()),
        "command": " ".join(["bench/bench_setups.py", *sys.argv[1:]]),
        "git_commit": git_commit(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "torch_threads": sorted({int(t) for t in runs["fit_threads"]}),
        "device": options.device,
        "cpu": cpu_model(),
        "cpu_count": os.cpu_count(),
        "loadavg_start_end": loads,
        "category": options.category,
        "images": {k: v for k, v in build_config(options)["datasets"]["bench"].items()},
        "repeats": options.repeats,
        "wall_s": round(seconds, 1),
    }
    if set(options.models) & set(TRAINED_MODELS):
        env["epochs_trained_models"] = options.epochs
    if options.device == "cuda":
        env["gpu"] = torch.cuda.get_device_name(0)
    return env


def cpu_model() -> str:
    """The CPU's model name from /proc/cpuinfo ("unknown" elsewhere)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return "unknown"


def git_commit() -> str:
    """Short HEAD commit, with ``+dirty`` when the tree has changes ("unknown" outside git)."""
    try:
        head = _git("rev-parse", "--short", "HEAD")
        dirty = _git("status", "--porcelain")
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return head + ("+dirty" if dirty else "")


def _git(*args: str) -> str:
    """Stripped stdout of a read-only git command run in this folder."""
    done = subprocess.run(["git", *args], cwd=HERE, capture_output=True, text=True, check=True)
    return done.stdout.strip()


# (CSV column, printed header, format) of the main table.
MAIN_COLUMNS = (
    ("model", "model", "{}"),
    ("setup", "setup", "{}"),
    ("grid", "grid", "{}"),
    ("n_tile_models", "tile models", "{:d}"),
    ("fit_s", "fit_s", "{:.1f}"),
    ("predict_s", "predict_s", "{:.1f}"),
    ("fit_cpu_s", "fit_cpu_s", "{:.1f}"),
    ("predict_cpu_s", "predict_cpu_s", "{:.1f}"),
    ("s_per_epoch_tile", "s/epoch/tile", "{:.1f}"),
    ("fit_rss_mb", "peak_rss_mb (fit)", "{:.0f}"),
    ("fit_rss_1tile_mb", "peak_rss_mb (fit, 1st tile)", "{:.0f}"),
    ("predict_rss_mb", "peak_rss_mb (predict)", "{:.0f}"),
    ("fit_base_rss_mb", "base_rss_mb", "{:.0f}"),
    ("fit_ratio", "fit peak / SM256", "{:.2f}"),
    ("fit_ratio_net", "fit net / SM256", "{:.2f}"),
    ("predict_ratio", "predict peak / SM256", "{:.2f}"),
    ("fit_cuda_mb", "cuda_mb (fit)", "{:.0f}"),
    ("predict_cuda_mb", "cuda_mb (predict)", "{:.0f}"),
    ("map_size", "map px", "{:d}"),
    ("image_auroc", "image_auroc", "{:.3f}"),
    ("pixel_auroc", "pixel_auroc", "{:.3f}"),
    ("pixel_aupro", "pixel_aupro", "{:.3f}"),
)


def markdown_table(table: pd.DataFrame, columns: tuple[tuple[str, str, str], ...]) -> str:
    """A pipe table of ``columns`` (those absent or all-NaN are left out); NaN cells print "-"."""
    present = [c for c in columns if c[0] in table and table[c[0]].notna().any()]
    lines = ["| " + " | ".join(header for _, header, _ in present) + " |"]
    lines.append("|" + "|".join("---" for _ in present) + "|")
    for _, row in table.iterrows():
        cells = [cell(row[key], fmt) for key, _, fmt in present]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def cell(value: Any, fmt: str) -> str:
    """One formatted cell; NaN and None print as "-"."""
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return "-"
    if fmt == "{:d}":
        value = int(value)
    return fmt.format(value)


def defect_table(table: pd.DataFrame) -> str:
    """Pixel AUPRO per defect type (map-max image score) of each setup."""
    columns = tuple((c, c, "{:.3f}") for c in table if c.startswith("aupro_"))
    return markdown_table(table, (("model", "model", "{}"), ("setup", "setup", "{}"), *columns))


def render(table: pd.DataFrame, env: dict[str, Any]) -> str:
    """The markdown report: environment, main table, AUPRO per defect type."""
    lines = ["# Setups benchmark", "", "## Environment", ""]
    lines += [f"- {key}: {value}" for key, value in env.items()]
    lines += ["", "## Medians over repeats", "", markdown_table(table, MAIN_COLUMNS)]
    lines += ["", "## Pixel AUPRO per defect type", "", defect_table(table), ""]
    return "\n".join(lines)


def write_results(options: Options, runs: pd.DataFrame, table: pd.DataFrame, text: str) -> None:
    """``<name>.csv`` (medians), ``<name>_runs.csv`` (every repeat) and ``<name>.md``."""
    options.results.mkdir(parents=True, exist_ok=True)
    stem = options.results / options.name
    table.to_csv(stem.with_suffix(".csv"), index=False, float_format="%.4g")
    runs.to_csv(stem.with_name(f"{options.name}_runs.csv"), index=False, float_format="%.4g")
    stem.with_suffix(".md").write_text(text)
    logger.info("wrote %s.{csv,md} and %s_runs.csv", stem, stem)


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark and print its tables."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", datefmt="%H:%M:%S")
    options = parse_args(argv)
    config = build_config(options)
    parse_config(config)  # fail on a bad model or setup before generating anything
    workdir = options.workdir or Path(tempfile.mkdtemp(prefix="bench_setups_"))
    manifest = prepare_dataset(config, options.category, workdir)
    start, load_start = time.perf_counter(), os.getloadavg()
    runs = measure(options, config, manifest, workdir)
    loads = [round(x, 2) for x in (*load_start[:1], *os.getloadavg()[:1])]
    table = summarize(runs)
    env = environment(options, runs, time.perf_counter() - start, loads)
    text = render(table, env)
    write_results(options, runs, table, text)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
