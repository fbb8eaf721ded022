"""helpers.localizer: the U-Net's cache checks its weights' SHA-256 like every weights cache of the book."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from helpers._cache import CorruptCacheWarning
from helpers.config import Settings
from helpers.data.imageset import ImageSet
from helpers.localizer import LocalizerError, get_trained_localizer


def _squares(n: int = 24, size: int = 32) -> ImageSet:
    """Noise; odd images hold a bright 8x8 square (their mask) at a seeded position."""
    rng = np.random.default_rng(0)
    images = (0.2 + 0.2 * rng.random((n, size, size))).astype(np.float32)
    labels = (np.arange(n) % 2).astype(np.int64)
    masks = np.zeros((n, size, size), bool)
    for i in range(1, n, 2):
        y, x = rng.integers(2, size - 10, 2)
        masks[i, y : y + 8, x : x + 8] = True
        images[i][masks[i]] += 0.5
    return ImageSet(images=np.clip(images, 0, 1), labels=labels, masks=masks,
                    boxes=[np.zeros((0, 4)) for _ in range(n)], ids=[f"sq-{i}" for i in range(n)],
                    patient_ids=[f"p-{i}" for i in range(n)], source="hand-made")


def test_one_flipped_byte_in_the_cached_weights_is_detected(tmp_path):
    data = _squares()
    splits = {"train": np.arange(16), "val": np.arange(16, 24)}
    settings = Settings(preset="smoke", image_size=32, epochs=1, batch_size=8, patience=1, device="cpu",
                        cache_dir=str(tmp_path))
    model, record = get_trained_localizer(settings, data, splits, base_channels=4)
    (weights,) = (tmp_path / "localizers").glob("*.pt")
    assert len(record["weights_sha256"]) == 64
    reloaded, _ = get_trained_localizer(settings, data, splits, base_channels=4)
    payload = bytearray(weights.read_bytes())
    payload[len(payload) // 2] ^= 0x01  # inside a tensor's data: torch.load alone loads it silently
    weights.write_bytes(bytes(payload))
    with pytest.raises(LocalizerError, match=rf"{weights.name}.* have SHA-256 .*delete"):
        get_trained_localizer(settings, data, splits, base_channels=4, on_corrupt="raise")
    with pytest.warns(CorruptCacheWarning, match=rf"{weights.name}.*set aside"):
        again, _ = get_trained_localizer(settings, data, splits, base_channels=4)
    assert weights.with_name(weights.name + ".corrupt").read_bytes() == bytes(payload)
    for k, v in model.state_dict().items():
        assert torch.equal(v, again.state_dict()[k]) and torch.equal(v, reloaded.state_dict()[k])


def test_a_broken_record_is_named(tmp_path):
    data = _squares()
    splits = {"train": np.arange(16), "val": np.arange(16, 24)}
    settings = Settings(preset="smoke", image_size=32, epochs=1, batch_size=8, patience=1, device="cpu",
                        cache_dir=str(tmp_path))
    get_trained_localizer(settings, data, splits, base_channels=4)
    (record_file,) = (tmp_path / "localizers").glob("*.json")
    record_file.write_text("{not json")
    with pytest.raises(LocalizerError, match=rf"cannot read the record .*{record_file.name}"):
        get_trained_localizer(settings, data, splits, base_channels=4, on_corrupt="raise")
    with pytest.raises(LocalizerError, match="on_corrupt must be one of"):
        get_trained_localizer(settings, data, splits, base_channels=4, on_corrupt="ignore")
