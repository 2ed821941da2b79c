import pytest

from tiled_pipeline.experiments import SETUPS, load_config, parse_config


def config_with(experiment: dict) -> dict:
    return {
        "datasets": {"synthetic": {"kind": "synthetic", "image_size": 64}},
        "experiments": [{"name": "exp", "dataset": "synthetic", **experiment}],
    }


def test_experiments_default_config_loads_with_every_setup_of_padim():
    config = load_config()
    setups = {e.setup.name for e in config.experiments if e.model == "padim"}
    assert setups == set(SETUPS)
    first = config.experiments[0]
    assert first.setup.name == "ENS9" and first.plan.grid == (3, 3)


@pytest.mark.parametrize(
    ("setup", "grid", "n_keys"),
    [
        ("SM256", (1, 1), 1),
        ("SM512", (1, 1), 1),
        ("ST4", (2, 2), 1),
        ("ST9", (3, 3), 1),
        ("ENS4", (2, 2), 4),
        ("ENS9", (3, 3), 9),
    ],
)
def test_experiments_setups_give_the_paper_grids(setup, grid, n_keys):
    experiment = parse_config(config_with({"model": "padim", "setup": setup})).experiments[0]
    assert experiment.plan.grid == grid
    assert len(experiment.tile_keys) == n_keys
    covered = sorted(p for key in experiment.tile_keys for p in experiment.positions(key))
    assert covered == list(range(grid[0] * grid[1]))


def test_experiments_size_overrides_keep_the_grid():
    raw = config_with(
        {"model": "padim", "setup": "ENS9", "image_size": 64, "tile_size": 32, "stride": 16}
    )
    experiment = parse_config(raw).experiments[0]
    assert experiment.plan.grid == (3, 3)
    assert experiment.plan.tile_size == (32, 32)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"model": "nope"}, "model='nope' is not accepted"),
        ({"setup": "ENS16"}, "setup='ENS16' is not accepted"),
        ({"model_params": {"colour": 1}}, "unknown parameter"),
        ({"merge": {"seam": 1}}, r"merge: unknown key\(s\) \['seam'\]"),
        ({"dataset": "mvtec"}, "dataset='mvtec' is not accepted"),
        ({"tile_size": 128, "stride": 256}, "stride"),
    ],
)
def test_experiments_bad_config_is_a_clear_error(change, message):
    with pytest.raises(ValueError, match=message):
        parse_config(config_with({"model": "padim", **change}))


def test_experiments_names_must_be_unique_and_valid():
    raw = config_with({"model": "padim"})
    raw["experiments"].append(dict(raw["experiments"][0]))
    with pytest.raises(ValueError, match="unique"):
        parse_config(raw)
    with pytest.raises(ValueError, match="name must match"):
        parse_config(config_with({"name": "Bad Name"}))


def test_experiments_file_from_environment(tmp_path, monkeypatch):
    path = tmp_path / "exp.toml"
    path.write_text(
        '[datasets.d]\nkind = "synthetic"\n[[experiments]]\nname = "a"\n'
        'dataset = "d"\nmodel = "patchcore"\nsetup = "ST4"\n'
    )
    monkeypatch.setenv("TILED_PIPELINE_EXPERIMENTS", str(path))
    config = load_config()
    assert [e.name for e in config.experiments] == ["a"]
    assert config.experiment("a").model == "patchcore"
    with pytest.raises(ValueError, match="not configured"):
        config.experiment("b")
    path.write_text("not = [toml")
    with pytest.raises(ValueError, match="not valid TOML"):
        load_config()


def test_experiments_fastflow_is_built_for_the_setup_tile():
    experiment = parse_config(config_with({"model": "fastflow", "setup": "ENS4"})).experiments[0]
    assert experiment.params["tile_size"] == (256, 256)
    sm512 = parse_config(config_with({"model": "fastflow", "setup": "SM512"})).experiments[0]
    assert sm512.params["tile_size"] == (512, 512)
