"""Seeded statistics splits: disjoint, complete, reproducible, stratified."""

from __future__ import annotations

import numpy as np
import pytest

from tiled_pipeline.evaluation import split_for_stats


def test_split_for_stats_test_source_fits_and_evaluates_on_the_whole_test_set() -> None:
    split = split_for_stats("test", n_test=7, n_train=5)
    np.testing.assert_array_equal(split.fit_indices, np.arange(7))
    np.testing.assert_array_equal(split.eval_indices, np.arange(7))
    np.testing.assert_array_equal(split.train_indices, np.arange(5))


def test_split_for_stats_heldout_test_is_disjoint_complete_and_stratified() -> None:
    strata = np.array(["good"] * 10 + ["crack"] * 5 + ["hole"] * 2 + ["scratch"])
    split = split_for_stats("heldout_test", len(strata), 20, fraction=0.3, seed=3, strata=strata)
    fit, rest = set(split.fit_indices.tolist()), set(split.eval_indices.tolist())
    assert not fit & rest and fit | rest == set(range(len(strata)))
    for name, n_held in (("good", 3), ("crack", 2), ("hole", 1), ("scratch", 0)):
        members = set(np.flatnonzero(strata == name).tolist())
        assert len(members & fit) == n_held, name
    np.testing.assert_array_equal(split.train_indices, np.arange(20))


def test_split_for_stats_is_seeded() -> None:
    first = split_for_stats("heldout_test", 50, 0, fraction=0.2, seed=11)
    again = split_for_stats("heldout_test", 50, 0, fraction=0.2, seed=11)
    other = split_for_stats("heldout_test", 50, 0, fraction=0.2, seed=12)
    np.testing.assert_array_equal(first.fit_indices, again.fit_indices)
    assert not np.array_equal(first.fit_indices, other.fit_indices)


def test_split_for_stats_heldout_normal_holds_out_training_images() -> None:
    split = split_for_stats("heldout_normal", n_test=6, n_train=10, fraction=0.2, seed=0)
    assert len(split.fit_indices) == 2
    assert not set(split.fit_indices.tolist()) & set(split.train_indices.tolist())
    assert len(split.fit_indices) + len(split.train_indices) == 10
    np.testing.assert_array_equal(split.eval_indices, np.arange(6))
    assert split.source == "heldout_normal"


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"source": "val"}, "source must be one of"),
        ({"fraction": 1.0}, r"fraction must be in \(0, 1\), got 1.0"),
        ({"source": "heldout_normal", "n_train": 1}, "needs at least 2 training images"),
        ({"n_test": 0}, "need n_test >= 1"),
        ({"source": "heldout_test", "strata": np.zeros(3)}, r"strata must have shape \(5,\)"),
    ],
)
def test_split_for_stats_rejects_bad_arguments(kwargs: dict, message: str) -> None:
    arguments = {"source": "test", "n_test": 5, "n_train": 4} | kwargs
    with pytest.raises(ValueError, match=message):
        split_for_stats(**arguments)
