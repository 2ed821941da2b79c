import pytest
import torch

from tiled_pipeline.defs.resources import DeviceResource, StorageResource


def test_resources_device_auto_and_cpu():
    expected = "cuda" if torch.cuda.is_available() else "cpu"
    assert DeviceResource(device="auto").torch_device().type == expected
    assert DeviceResource(device="cpu").torch_device() == torch.device("cpu")


@pytest.mark.parametrize("name", ["gpu", "cuda:x", "tpu"])
def test_resources_device_rejects_unknown_names(name):
    with pytest.raises(ValueError, match="not accepted"):
        DeviceResource(device=name).torch_device()


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
def test_resources_device_cuda_without_gpu_names_the_fix():
    with pytest.raises(ValueError, match="CUDA is not available; use 'auto' or 'cpu'"):
        DeviceResource(device="cuda:0").torch_device()


def test_resources_storage_default_root_follows_environment(monkeypatch, tmp_path):
    monkeypatch.delenv("TILED_PIPELINE_STORAGE", raising=False)
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path))
    assert str(StorageResource().base()) == str(tmp_path / "storage")
    monkeypatch.setenv("TILED_PIPELINE_STORAGE", str(tmp_path / "elsewhere"))
    assert str(StorageResource().base()) == str(tmp_path / "elsewhere")
    storage = StorageResource(root=str(tmp_path / "x"))
    assert storage.partition("e", "tile_model", "weave", "g3x3r0c0").parts[-4:] == (
        "e",
        "tile_model",
        "weave",
        "g3x3r0c0",
    )
    assert storage.downloads_dir() == tmp_path / "downloads"


def test_resources_gpu_step_tags_match_the_deploy_file():
    import pathlib

    import yaml

    from tiled_pipeline.defs.tiles import GPU_STEP_TAGS

    root = pathlib.Path(__file__).resolve().parents[3]
    assert yaml.safe_load((root / "deploy" / "gpu_step_tags.yaml").read_text()) == GPU_STEP_TAGS
