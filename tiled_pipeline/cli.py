"""``tiled-pipeline``: run the whole graph of an experiment in a persistent Dagster home.

``tiled-pipeline run`` materializes, in order, the dataset partition of each category, every
(category, tile) partition of the tile layer, the category layer and the benchmark summary, each
as a Dagster run recorded in ``$DAGSTER_HOME``, so that ``dagster dev`` afterwards shows the
lineage and every materialization. Partitions that are already materialized and not stale are
skipped unless ``--force`` is given.
"""

from __future__ import annotations

import argparse
import logging
import os
import shutil
import sys
import time
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parent.parent


def prepare_dagster_home() -> Path:
    """Use ``$DAGSTER_HOME`` or ``./.dagster_home``; put the project's dagster.yaml in it."""
    home = Path(os.environ.get("DAGSTER_HOME") or ".dagster_home").resolve()
    home.mkdir(parents=True, exist_ok=True)
    os.environ["DAGSTER_HOME"] = str(home)
    os.environ.setdefault("DAGSTER_DISABLE_TELEMETRY", "1")
    target = home / "dagster.yaml"
    source = PROJECT_ROOT / "dagster.yaml"
    if not target.exists() and source.exists():
        shutil.copy(source, target)
    return home


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="tiled-pipeline", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="materialize the whole graph of one experiment")
    run.add_argument("--experiment", help="experiment name (default: the first configured)")
    run.add_argument(
        "--category",
        action="append",
        help="category to run (repeatable; 'all' for every one; default: the first)",
    )
    run.add_argument("--force", action="store_true", help="re-run partitions even if fresh")
    run.add_argument("--device", default="auto", help="auto | cpu | cuda | cuda:N")
    sub.add_parser("list", help="list configured experiments and their partitions")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``tiled-pipeline`` command."""
    args = parse_args(argv)
    home = prepare_dagster_home()
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    logging.getLogger("tiled_pipeline").setLevel(logging.INFO)
    from tiled_pipeline.defs.runner import list_experiments, run_experiment

    if args.command == "list":
        print(list_experiments())
        return 0
    start = time.perf_counter()
    summary = run_experiment(
        experiment_name=args.experiment,
        categories=args.category,
        force=args.force,
        device=args.device,
    )
    print(summary.render(home, time.perf_counter() - start))
    return 0 if summary.succeeded else 1


if __name__ == "__main__":
    sys.exit(main())
