import numpy as np
import pytest
import torch

from tiled_pipeline.models import Prediction
from tiled_pipeline.pipeline.modeling import CropBatches, predict_crops


def test_modeling_batches_stream_every_position_as_floats():
    crops = np.arange(5 * 2 * 4 * 4 * 3, dtype=np.uint8).reshape(5, 2, 4, 4, 3)
    batches = list(CropBatches(crops, batch_size=4))
    assert len(CropBatches(crops, 4)) == len(batches) == 3
    assert [b.shape[0] for b in batches] == [4, 4, 2]
    first = batches[0]
    assert first.dtype == torch.float32 and first.shape[1:] == (3, 4, 4)
    assert float(first.max()) <= 1.0
    np.testing.assert_allclose(first[1].permute(1, 2, 0).numpy() * 255, crops[0, 1])
    with pytest.raises(ValueError, match=r"\(N, P, th, tw, 3\)"):
        CropBatches(crops[..., 0], 4)


class Scale(torch.nn.Module):
    def __init__(self, factor):
        super().__init__()
        self.factor = factor

    def predict(self, images):
        maps = images.mean(dim=1) * self.factor
        return Prediction(anomaly_maps=maps, scores=maps.flatten(1).amax(dim=1))


def test_modeling_predictions_keep_order_and_use_float16_when_safe():
    crops = np.random.default_rng(0).integers(0, 255, (3, 2, 4, 4, 3), dtype=np.uint8)
    small = predict_crops(Scale(1.0), crops, batch_size=4)
    assert small.maps.shape == (3, 2, 4, 4) and small.maps.dtype == np.float16
    expected = crops.mean(axis=-1) / 255
    np.testing.assert_allclose(small.maps, expected, atol=1e-3)
    np.testing.assert_allclose(small.scores, expected.reshape(3, 2, -1).max(axis=2), rtol=1e-5)
    large = predict_crops(Scale(1e6), crops, batch_size=4)
    assert large.maps.dtype == np.float32 and np.isfinite(large.maps).all()
