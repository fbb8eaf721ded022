"""Arun et al.'s rules on hand-made inputs, and on the paper's own numbers."""

from __future__ import annotations

import numpy as np
import pytest

from helpers.metrics import (
    PAPER_NETWORK_SSIM,
    PAPER_SSIM,
    MetricInputError,
    paper_localization,
    paper_randomization,
    paper_repeatability,
    paper_reproducibility,
)


def test_localization_needs_the_network_and_the_prior():
    v = paper_localization(0.62, 0.60, 0.40)
    assert v.passed is True and v.rules == "paper" and v.value == pytest.approx(0.02)
    assert paper_localization(0.52, 0.60, 0.40).passed is False  # below the network
    assert paper_localization(0.62, 0.30, 0.70).passed is False  # below the prior
    assert np.isnan(v.numbers["p_vs_network"])  # means only: no test


def test_localization_on_per_image_values_reports_p_values():
    rng = np.random.default_rng(0)
    net = rng.uniform(0.5, 0.7, size=30)
    maps = net - 0.2 + rng.normal(0, 0.02, size=30)
    v = paper_localization(maps, net, np.full(30, 0.2))
    assert v.passed is False and v.numbers["p_vs_network"] < 0.005 and v.numbers["p_vs_prior"] < 0.005
    assert v.ci[1] < 0


def test_randomization_point_estimates_and_tolerance():
    assert paper_randomization(0.20, 0.25).passed is True
    assert paper_randomization(0.30, 0.25).passed is False
    assert paper_randomization(0.25, 0.24, tolerance=0.01).passed is None
    v = paper_randomization(np.array([[0.1, 0.2], [0.3, 0.4]]), np.array([0.3, 0.3]))
    # mean over images per replicate (0.15, 0.35), then over replicates: 0.25 < 0.3
    assert v.numbers["mean_final"] == pytest.approx(0.25) and v.passed is True
    with pytest.raises(MetricInputError, match="finite"):
        paper_randomization(0.2, float("nan"))


def test_agreement_reaches_the_network():
    for fn, name in ((paper_repeatability, "repeatability"), (paper_reproducibility, "reproducibility")):
        assert fn(0.84, 0.80).passed is True and fn(0.84, 0.80).criterion == name
        assert fn(0.30, 0.80).passed is False
        assert fn(0.795, 0.80, tolerance=0.01).passed is None


def test_the_ssim_specifications_of_the_paper():
    assert PAPER_SSIM["data_range"] == 2.0 and PAPER_SSIM["win_size"] == 7
    assert PAPER_NETWORK_SSIM["data_range"] == 1.0  # uint8 PNGs compared over their full range


def test_undecided_without_finite_values():
    assert paper_localization(np.array([np.nan, np.nan]), np.array([0.5, 0.6]), np.array([0.1, 0.2])).passed is None
    assert paper_randomization(np.array([np.nan, np.nan]), np.array([0.3, 0.3])).passed is None
    assert paper_repeatability(np.array([np.nan]), 0.8).passed is None
