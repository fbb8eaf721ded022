"""A Study with given models (``model``) and an evaluation set from elsewhere (``eval_dataset``): nothing trained."""

from __future__ import annotations

import pytest
import torch

from helpers.config import ConfigError
from helpers.data import synth
from helpers.models import build
from helpers.study import Study


def test_given_models_replace_training_and_explained_images_come_from_the_eval_folder(tmp_path):
    synth(tmp_path / "eval", n=6, size=64, seed=3, positive_fraction=1.0, progress=False)
    for seed in (0, 1):
        torch.save(build("smallcnn", seed=seed).state_dict(), tmp_path / f"w{seed}.pt")
    study = Study.from_parameters(
        "smoke", image_size=32, n_images=4, model=[f"smallcnn={tmp_path / 'w0.pt'}", f"smallcnn={tmp_path / 'w1.pt'}"],
        eval_dataset="rsna", eval_data_dir=str(tmp_path / "eval"), cache_dir=str(tmp_path / "cache"),
        results_dir=str(tmp_path / "results"))
    first, second = study.classifier(), study.classifier("smallcnn", replicate=1)
    assert first.record["given"].endswith("w0.pt") and second.record["replicate"] == 1
    assert first.key != second.key
    assert set(study.classifiers()) == {("smallcnn", 0), ("smallcnn", 1)}
    assert len(study.explained) == 4 and study.explained.labels.tolist() == [1, 1, 1, 1]
    assert study.maps(first, "GRAD").shape == (4, 32, 32)
    with pytest.raises(ConfigError, match="replicate 2"):
        study.classifier(replicate=2)
    with pytest.raises(ConfigError, match="permuted labels"):
        study.classifier(label_mode="permuted")
    assert not (tmp_path / "cache" / "models").exists()
