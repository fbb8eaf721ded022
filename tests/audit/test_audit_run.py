"""run_audit on a model the book did not build: torchvision's DenseNet121 (functional ReLUs, 3-channel ImageNet
input, 1000 outputs) given as ``package.module:function=WEIGHTS``."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torchvision

from helpers import randomization, saliency
from helpers.audit import run_audit, write_audit
from helpers.config import resolve
from helpers.data import synth
from helpers.models import count_relu_calls


@pytest.mark.slow
def test_densenet121_goes_through_every_criterion_with_guided_backprop_really_guided(tmp_path):
    synth(tmp_path / "eval", n=6, size=64, seed=7, positive_fraction=1.0, progress=False)
    torch.manual_seed(0)
    torch.save(torchvision.models.densenet121().state_dict(), tmp_path / "densenet.pt")
    spec = f"torchvision.models:densenet121={tmp_path / 'densenet.pt'}"
    settings = resolve("smoke", model=[spec], model_channels=3, model_normalization="imagenet", model_class_index=8,
                       image_size=32, n_images=3, eval_dataset="rsna", eval_data_dir=str(tmp_path / "eval"),
                       methods=["GRAD", "GBP", "GCAM"], n_bootstrap=100, cache_dir=str(tmp_path / "cache"),
                       results_dir=str(tmp_path / "results"))
    result = run_audit(settings)
    model = result.models[0].model
    x = result.data.images.images[:, None]
    assert len(model.relus) == 1  # DenseNet.forward's F.relu after features
    assert count_relu_calls(model, torch.as_tensor(x)).functional_calls == 0
    assert not np.allclose(saliency.attribute(model, x, "GBP", target=1), saliency.attribute(model, x, "GRAD", target=1))
    assert result.models[0].refused == {}
    blocks = randomization.blocks_for(model)
    names = [n for n, _ in model.named_parameters()]
    assert all(sum(n.startswith(m + ".") for b in blocks for m in b.modules) == 1 for n in names)
    assert blocks[0].label == "classifier"
    assert set(result.verdicts.criterion) == {"localization", "randomization"}
    assert len(result.verdicts) == 2 * 2 * 3
    paths = write_audit(result, tmp_path / "out")
    assert "densenet121" in paths["report.md"].read_text()


@pytest.mark.slow
def test_without_an_eval_set_the_book_s_test_split_prior_and_two_u_nets_are_used(tmp_path):
    torch.save(__import__("helpers.models", fromlist=["build"]).build("smallcnn", seed=0).state_dict(),
               tmp_path / "w.pt")
    spec = f"smallcnn={tmp_path / 'w.pt'}"
    settings = resolve("smoke", model=[spec, spec], image_size=32, n_images=3, n_synthetic=80, epochs=1,
                       methods=["GRAD"], n_bootstrap=100, cache_dir=str(tmp_path / "cache"),
                       results_dir=str(tmp_path / "results"))
    result = run_audit(settings)
    assert result.data.network is not None and np.isfinite(result.data.network_agreement).all()
    assert set(result.verdicts.criterion) == {"localization", "randomization", "repeatability"}
    paper = result.verdicts[(result.verdicts.rules == "paper") & (result.verdicts.criterion == "localization")]
    assert paper.passed.notna().all()  # judged against the U-Net, not undecided
