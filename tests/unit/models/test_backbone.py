"""The frozen feature extractor and its weight sources (all offline)."""

from __future__ import annotations

import pytest
import timm
import torch

from tiled_pipeline.models.backbone import FeatureExtractor, lite_package_file


def test_feature_extractor_package_weights_load_and_differ_from_random() -> None:
    packaged = FeatureExtractor("tf_efficientnet_lite0", (1, 2, 3), "package")
    random = FeatureExtractor("tf_efficientnet_lite0", (1, 2, 3), "random")
    # The stem of the package checkpoint lands on timm's conv_stem unchanged.
    source = torch.load(lite_package_file("tf_efficientnet_lite0"), weights_only=True)
    stem = packaged.model.state_dict()["conv_stem.weight"]
    assert torch.equal(stem, source["_conv_stem.weight"])
    assert not torch.equal(stem, random.model.state_dict()["conv_stem.weight"])
    images = torch.rand(1, 3, 64, 64, generator=torch.Generator().manual_seed(0))
    shapes = [tuple(f.shape) for f in packaged(images)]
    assert shapes == [(1, 24, 16, 16), (1, 40, 8, 8), (1, 112, 4, 4)]
    assert packaged.channels == [24, 40, 112] and packaged.reductions == [4, 8, 16]


def test_feature_extractor_loads_a_local_weights_file(tmp_path) -> None:
    full = timm.create_model("resnet18", pretrained=False)
    path = tmp_path / "resnet18.pth"
    torch.save(full.state_dict(), path)
    loaded = FeatureExtractor("resnet18", (1, 2), str(path))
    reference = timm.create_model("resnet18", features_only=True, out_indices=(1, 2)).eval()
    reference.load_state_dict(full.state_dict(), strict=False)  # drops layer3/4 and the head
    images = torch.rand(2, 3, 64, 64, generator=torch.Generator().manual_seed(0))
    mean, std = loaded.mean, loaded.std
    with torch.no_grad():
        expected = reference((images - mean) / std)
        for got, want in zip(loaded(images), expected, strict=True):
            assert torch.equal(got, want)


def test_feature_extractor_rejects_unknown_weights_source() -> None:
    with pytest.raises(ValueError, match=r"weights='imagenet' is neither 'random', 'timm'"):
        FeatureExtractor("resnet18", (1, 2), "imagenet")


def test_feature_extractor_rejects_unknown_backbone() -> None:
    with pytest.raises(ValueError, match=r"backbone='resnet9000' is not a timm model"):
        FeatureExtractor("resnet9000", (1, 2), "random")


def test_feature_extractor_package_weights_need_a_lite_backbone() -> None:
    with pytest.raises(ValueError, match=r"weights='package' needs one of .*resnet18"):
        FeatureExtractor("resnet18", (1, 2), "package")


def test_feature_extractor_rejects_tiles_below_its_stride() -> None:
    extractor = FeatureExtractor("resnet18", (1, 2), "random")
    with pytest.raises(ValueError, match="tile of 4x4 is smaller than the backbone's largest"):
        extractor(torch.rand(1, 3, 4, 4))


def test_feature_extractor_stays_frozen_in_train_mode() -> None:
    extractor = FeatureExtractor("resnet18", (1, 2), "random").train()
    assert not extractor.model.training
    assert not any(parameter.requires_grad for parameter in extractor.parameters())
