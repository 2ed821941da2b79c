"""Experiments: (dataset, model with its parameters, setup, merge and evaluation options).

One typed configuration source: a TOML file (the packaged ``experiments.toml`` by default, or the
file named by ``TILED_PIPELINE_EXPERIMENTS``) parsed into frozen dataclasses. Each experiment
becomes its own Dagster asset group; the paper's six setups are built in (``SETUPS``).
"""

from __future__ import annotations

import os
import re
import tomllib
from dataclasses import dataclass, field, fields, replace
from importlib import resources
from pathlib import Path
from typing import Any, Literal

from tiled_pipeline.data import DatasetSpec
from tiled_pipeline.models import MODEL_NAMES, make_config, model_classes
from tiled_pipeline.tiling import TilePlan, make_plan, shared_key

CONFIG_ENV = "TILED_PIPELINE_EXPERIMENTS"
_SETUP_KEYS = ("setup", "image_size", "tile_size", "stride")
_NAME = re.compile(r"^[a-z][a-z0-9_]*$")


@dataclass(frozen=True)
class Setup:
    """How an image is cut and how many models see it.

    Attributes:
        name: the paper's name, e.g. ``ENS9``.
        image_size: side of the square working image in pixels.
        tile_size: side of a square tile in pixels (``image_size`` for whole-image setups).
        stride: step between tiles in pixels (``tile_size`` for no overlap).
        ensemble: one model per tile position (True) or one model for all positions (False).
    """

    name: str
    image_size: int
    tile_size: int
    stride: int
    ensemble: bool


# The six setups of Rolih et al. (CVPR 2024 VAND workshop), table 1 of the supplementary.
SETUPS: dict[str, Setup] = {
    "SM256": Setup("SM256", 256, 256, 256, ensemble=False),
    "SM512": Setup("SM512", 512, 512, 512, ensemble=False),
    "ST4": Setup("ST4", 512, 256, 256, ensemble=False),
    "ST9": Setup("ST9", 512, 256, 128, ensemble=False),
    "ENS4": Setup("ENS4", 512, 256, 256, ensemble=True),
    "ENS9": Setup("ENS9", 512, 256, 128, ensemble=True),
}


@dataclass(frozen=True)
class MergeOptions:
    """How tile maps become one map: overlap mean, then optional seam smoothing.

    Attributes:
        tile_mode: sizes that do not divide evenly are padded (``pad``) or resized (``resize``).
        seam_smoothing: blur the merged map in a band around each tile seam.
        seam_band: band width as a fraction of the tile size (0.1 = 10%).
        seam_sigma: Gaussian sigma of the seam blur in pixels.
    """

    tile_mode: Literal["pad", "resize"] = "pad"
    seam_smoothing: bool = True
    seam_band: float = 0.1
    seam_sigma: float = 2.0


@dataclass(frozen=True)
class EvaluationOptions:
    """Normalization, thresholds and the images their statistics come from.

    Attributes:
        normalization: per ``tile`` before merging, per merged ``image``, or ``none``.
        threshold: adaptive F1 threshold fitted per ``tile`` or per merged ``image``.
        stats_source: ``test`` (the test set itself, as the reference implementation does),
            ``heldout_test`` (a seeded split of the test set, metrics on the rest) or
            ``heldout_normal`` (normal images held out from training).
        heldout_fraction: share of images held out for the statistics, in (0, 1).
        min_image_auroc: optional per-category floor checked after each report.
        figure_images: most and least anomalous images shown in the report figure.
    """

    normalization: Literal["tile", "image", "none"] = "image"
    threshold: Literal["tile", "image"] = "image"
    stats_source: Literal["test", "heldout_test", "heldout_normal"] = "test"
    heldout_fraction: float = 0.2
    min_image_auroc: float | None = None
    figure_images: int = 3


@dataclass(frozen=True)
class Experiment:
    """One (dataset, model, setup) triple and everything needed to run it.

    ``image_size``, ``tile_size``, ``stride`` and ``ensemble`` start from the named setup and may be
    overridden, e.g. to run ENS9's grid on tiny test images.
    """

    name: str
    dataset_name: str
    dataset: DatasetSpec
    model: str
    model_params: tuple[tuple[str, Any], ...]
    setup: Setup
    merge: MergeOptions = field(default_factory=MergeOptions)
    evaluation: EvaluationOptions = field(default_factory=EvaluationOptions)
    batch_size: int = 8
    seed: int = 0

    @property
    def plan(self) -> TilePlan:
        """The tile plan of the working image."""
        s = self.setup
        return make_plan(s.image_size, s.tile_size, s.stride, mode=self.merge.tile_mode)

    @property
    def tile_keys(self) -> tuple[str, ...]:
        """Keys of the tile dimension: one per position for ensembles, else one shared key."""
        plan = self.plan
        return plan.keys if self.setup.ensemble else (shared_key(plan),)

    def positions(self, tile_key: str) -> tuple[int, ...]:
        """Tile indices (row-major) covered by the model of ``tile_key``."""
        plan = self.plan
        if not self.setup.ensemble:
            return tuple(range(plan.n_tiles))
        row, col = plan.position(tile_key)
        return (row * plan.grid[1] + col,)

    @property
    def train_holdout_fraction(self) -> float:
        """Share of train images held out from fitting: only when they feed the statistics."""
        options = self.evaluation
        return options.heldout_fraction if options.stats_source == "heldout_normal" else 0.0

    @property
    def params(self) -> dict[str, Any]:
        """Model parameters as a plain dict."""
        return dict(self.model_params)

    @property
    def categories(self) -> tuple[str, ...]:
        """Categories of the experiment's dataset."""
        return self.dataset.selected_categories()


@dataclass(frozen=True)
class ProjectConfig:
    """Every dataset and experiment of the project."""

    datasets: dict[str, DatasetSpec]
    experiments: tuple[Experiment, ...]

    def experiment(self, name: str) -> Experiment:
        """The experiment called ``name``."""
        for experiment in self.experiments:
            if experiment.name == name:
                return experiment
        known = [e.name for e in self.experiments]
        raise ValueError(f"experiment={name!r} is not configured; configured: {known}")


def _build(cls: type, values: dict[str, Any], where: str) -> Any:
    """Instantiate a frozen dataclass, naming unknown keys and ``where`` they were found."""
    names = {f.name for f in fields(cls)}
    unknown = sorted(set(values) - names)
    if unknown:
        raise ValueError(f"{where}: unknown key(s) {unknown}; accepted: {sorted(names)}")
    return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in values.items()})


def _check_choice(value: object, choices: tuple[object, ...], where: str) -> None:
    if value not in choices:
        raise ValueError(f"{where}={value!r} is not accepted; expected one of {list(choices)}")


def parse_setup(raw: dict[str, Any], where: str) -> Setup:
    """The named setup with optional ``image_size``/``tile_size``/``stride`` overrides."""
    name = raw.get("setup", "ENS9")
    _check_choice(name, tuple(SETUPS), f"{where}.setup")
    overrides = {k: raw[k] for k in ("image_size", "tile_size", "stride") if k in raw}
    setup = replace(SETUPS[name], **overrides)
    if "tile_size" in overrides and "stride" not in overrides and not SETUPS[name].ensemble:
        setup = replace(setup, stride=setup.tile_size)
    return setup


def parse_experiment(raw: dict[str, Any], datasets: dict[str, DatasetSpec]) -> Experiment:
    """One ``[[experiments]]`` table -> ``Experiment``, validated."""
    raw = dict(raw)
    name = raw.pop("name", None)
    where = f"experiment {name!r}"
    if not isinstance(name, str) or not _NAME.match(name):
        raise ValueError(f"{where}: name must match {_NAME.pattern} (it becomes an asset prefix)")
    dataset_name = raw.pop("dataset", "synthetic")
    _check_choice(dataset_name, tuple(datasets), f"{where}.dataset")
    model = raw.pop("model", "padim")
    _check_choice(model, MODEL_NAMES, f"{where}.model")
    params = dict(raw.pop("model_params", {}))
    setup = parse_setup({k: raw.pop(k) for k in list(raw) if k in _SETUP_KEYS}, where)
    if "tile_size" in model_fields(model) and "tile_size" not in params:
        # Models whose layers depend on the input size are built for the setup's tile.
        params["tile_size"] = [setup.tile_size, setup.tile_size]
    make_config(model, params)  # validate parameter names and values now, not at run time
    merge = _build(MergeOptions, raw.pop("merge", {}), f"{where}.merge")
    evaluation = _build(EvaluationOptions, raw.pop("evaluation", {}), f"{where}.evaluation")
    experiment = _build(
        Experiment,
        dict(
            name=name,
            dataset_name=dataset_name,
            dataset=datasets[dataset_name],
            model=model,
            model_params=tuple(sorted((k, _freeze(v)) for k, v in params.items())),
            setup=setup,
            merge=merge,
            evaluation=evaluation,
            **raw,
        ),
        where,
    )
    make_plan(setup.image_size, setup.tile_size, setup.stride, mode=merge.tile_mode)  # fail early
    return experiment


def model_fields(model: str) -> set[str]:
    """Names of the config fields of ``model``."""
    return {f.name for f in fields(model_classes(model)[1])}


def _freeze(value: Any) -> Any:
    return tuple(value) if isinstance(value, list) else value


def parse_config(raw: dict[str, Any]) -> ProjectConfig:
    """A parsed TOML document -> ``ProjectConfig``."""
    datasets = {
        name: _build(DatasetSpec, values, f"dataset {name!r}")
        for name, values in raw.get("datasets", {}).items()
    }
    if not datasets:
        raise ValueError("the configuration declares no [datasets.<name>] table; add one")
    experiments = tuple(parse_experiment(e, datasets) for e in raw.get("experiments", []))
    if not experiments:
        raise ValueError("the configuration declares no [[experiments]]; add at least one")
    names = [e.name for e in experiments]
    if len(set(names)) != len(names):
        raise ValueError(f"experiment names must be unique, got {names}")
    return ProjectConfig(datasets=datasets, experiments=experiments)


def load_config(path: str | Path | None = None) -> ProjectConfig:
    """Read ``path``, else ``$TILED_PIPELINE_EXPERIMENTS``, else the packaged experiments file."""
    path = path or os.environ.get(CONFIG_ENV)
    if path is None:
        text = resources.files("tiled_pipeline").joinpath("experiments.toml").read_text()
        return parse_config(tomllib.loads(text))
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"experiments file {str(path)!r} does not exist; set {CONFIG_ENV}")
    try:
        return parse_config(tomllib.loads(path.read_text()))
    except tomllib.TOMLDecodeError as error:
        raise ValueError(f"experiments file {str(path)!r} is not valid TOML: {error}") from error
