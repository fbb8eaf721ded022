"""The reference numbers of Arun et al. (2021), as tidy tables the figures can show.

Each row carries its provenance in ``source`` so that a caption can say how
far the number can be trusted:

``[F]``
    read off a figure of the authors' repository (``QTIM-Lab/Assessing-Saliency-Maps``,
    ``figures/*.png``) by pixel measurement; about ±0.01.
``[P]``
    stated in the paper's text, abstract or a figure caption.

The paper's own tables of numbers could not be retrieved; the figure readings
are what is known. ``note`` says what a row means when it is not obvious
(axis assumptions, which network a baseline is).

Datasets are ``"SIIM"`` (SIIM-ACR Pneumothorax, segmentation masks) and
``"RSNA"`` (RSNA Pneumonia, bounding boxes). Methods use the book's names
(:data:`helpers.config.PAPER_METHODS`); baselines are ``"Avg"`` (the
average-mask prior) and ``"Net"`` (a localization network: U-Net on SIIM,
RetinaNet on RSNA).

References
----------
.. [1] N. Arun et al., "Assessing the trustworthiness of saliency maps for
   localizing abnormalities in medical imaging", Radiology: Artificial
   Intelligence 3(6), 2021. arXiv:2008.02766.
"""

from __future__ import annotations

import pandas as pd

from helpers.config import PAPER_METHODS

__all__ = [
    "CITATION",
    "SOURCES",
    "DATASETS",
    "NETWORKS",
    "RANDOMIZATION_STATES",
    "PAPER_RANDOMIZATION_FAILURES",
    "PaperReferenceError",
    "paper_utility",
    "paper_randomization",
    "paper_repeatability",
]

#: Citation key of the paper in ``book/references.bib``.
CITATION = "arun2021assessing"

#: What each provenance tag means (for captions).
SOURCES = {
    "[F]": "read off a figure of the authors' repository (about ±0.01)",
    "[P]": "stated in the paper's text or abstract",
}

DATASETS = ("SIIM", "RSNA")

#: The localization network of each dataset (the "Net" baseline).
NETWORKS = {"SIIM": "U-Net", "RSNA": "RetinaNet"}

#: States of the paper's cascading-randomization figure that were read off,
#: with the fraction of the ten Inception blocks (mixed10 ... mixed1) that are
#: randomized at that state (the logits layer is randomized in all of them).
RANDOMIZATION_STATES = {"Logits": 0.0, "10": 0.1, "5": 0.6, "1": 1.0}

#: Number of the eight methods that fail the randomization test [P].
PAPER_RANDOMIZATION_FAILURES = {"SIIM": 5, "RSNA": 2}


class PaperReferenceError(ValueError):
    """An unknown dataset or criterion was asked for."""


# --------------------------------------------------------------------------
# The numbers, typed from the figure readings (research note paper-spec 1.3-1.5).
# Order of the methods: PAPER_METHODS = GRAD SG IG SIG GCAM XRAI GBP GGCAM.

# AUPRC "mean|median" per method [F] (fig. 2 of the repository; dashed line = mean,
# solid line = median).
_UTILITY = {
    ("SIIM", "trained"): [(.100, .068), (.038, .029), (.082, .053), (.024, .016),
                          (.141, .035), (.225, .119), (.135, .116), (.152, .063)],
    ("SIIM", "untrained"): [(.043, .029), (.034, .021), (.036, .024), (.032, .018),
                            (.017, .009), (.055, .024), (.047, .034), (.031, .018)],
    ("RSNA", "trained"): [(.340, .324), (.170, .131), (.321, .304), (.161, .125),
                          (.405, .408), (.519, .550), (.174, .156), (.316, .312)],
    ("RSNA", "untrained"): [(.250, .212), (.315, .278), (.285, .245), (.279, .247),
                            (.121, .105), (.428, .393), (.216, .169), (.132, .118)],
}
_UTILITY_BASELINES = {  # (Avg mean, Avg median, Net mean, Net median) [F]
    "SIIM": (.143, .095, .403, .494),
    "RSNA": (.466, .424, .597, .640),
}
_AVG_NOTES = {
    "SIIM": "pixel-wise mean of all training and validation masks (empty ones included), one map for every test image",
    "RSNA": "pixel-wise mean of the positive training and validation box masks (the authors' code for it is "
            "incomplete), one map for every test image",
}
# The abstract states the range of the eight methods' AUPRC and the network's
# AUPRC [P]; the figure shows that the range ends are the SIG and XRAI means.
_UTILITY_TEXT = {
    "SIIM": {"SIG": .024, "XRAI": .224, "Net": .404},
    "RSNA": {"SIG": .160, "XRAI": .519, "Net": .596},
}

# Cascading randomization: mean SSIM to the original map at four states and the
# random-pair baseline [F] (fig. 3).
_RANDOMIZATION = {
    # method: (Logits, 10, 5, 1, baseline)
    "SIIM": {
        "GRAD": (.38, .33, .30, .25, .24), "SG": (.67, .66, .66, .56, .315),
        "IG": (.43, .39, .38, .31, .24), "SIG": (.75, .75, .74, .57, .50),
        "GCAM": (.42, .44, .27, .43, .44), "XRAI": (.92, .88, .85, .81, .63),
        "GBP": (.99, .94, .80, .37, .36), "GGCAM": (.70, .69, .48, .42, .63),
    },
    "RSNA": {
        "GRAD": (.39, .28, .28, .18, .20), "SG": (.32, .29, .29, .25, .315),
        "IG": (.43, .33, .35, .23, .21), "SIG": (.45, .41, .39, .32, .60),
        "GCAM": (.65, .51, .40, .37, .54), "XRAI": (.83, .73, .76, .72, .65),
        "GBP": (.99, .91, .62, .24, .30), "GGCAM": (.81, .63, .50, .49, .56),
    },
}
_RANDOMIZATION_NOTES = {
    "SIIM": "",
    "RSNA": "RSNA panel has no tick labels; ticks assumed to be 1.0, 0.8, ..., 0.2 as on the SIIM panel",
}

# Mean SSIM per method: (repeatability, reproducibility) [F] (fig. 4).
_REPEATABILITY = {
    "SIIM": [(.22, .17), (.18, .34), (.22, .17), (.22, .35), (.43, .37), (.64, .49), (.32, .29), (.58, .44)],
    "RSNA": [(.30, .24), (.27, .18), (.36, .27), (.38, .27), (.68, .59), (.84, .75), (.56, .32), (.71, .63)],
}
# Network baseline: mean SSIM between the outputs of two independently trained
# localization networks, one dashed line on the combined repeatability /
# reproducibility figure [F].
_REPEATABILITY_NET = {"SIIM": .975, "RSNA": .80}


def _datasets(dataset: str | None) -> tuple[str, ...]:
    if dataset is None:
        return DATASETS
    if dataset not in DATASETS:
        raise PaperReferenceError(f"unknown dataset {dataset!r} of Arun et al. (2021); valid: {', '.join(DATASETS)}")
    return (dataset,)


def paper_utility(*, dataset: str | None = None) -> pd.DataFrame:
    """Localization utility (AUPRC per image) reported by Arun et al. (2021).

    Parameters
    ----------
    dataset : {"SIIM", "RSNA"}, optional
        Keep one dataset (default: both).

    Returns
    -------
    pandas.DataFrame
        Columns ``dataset, method, state, statistic, value, source, note``.
        ``method`` is one of the eight paper methods, ``"Avg"`` (the
        average-mask prior) or ``"Net"`` (U-Net on SIIM, RetinaNet on RSNA);
        ``state`` is ``"trained"`` or ``"untrained"`` for the maps and ``""``
        for the baselines; ``statistic`` is ``"mean"`` or ``"median"`` over
        the test images. Where the abstract states a value that the figure
        also shows, both rows are present (``[P]`` and ``[F]``).

    Notes
    -----
    The AUPRC is the trapezoidal area under the per-image pixel-wise
    precision-recall curve (``sklearn.metrics.auc(recall, precision)``), not
    the average precision the book reports; the two are close but not equal.

    References
    ----------
    .. [1] Arun et al. (2021), fig. 2 and abstract.
    """
    rows = []
    for ds in _datasets(dataset):
        for state in ("trained", "untrained"):
            for method, (mean, median) in zip(PAPER_METHODS, _UTILITY[(ds, state)]):
                for statistic, value in (("mean", mean), ("median", median)):
                    rows.append(dict(dataset=ds, method=method, state=state, statistic=statistic,
                                     value=value, source="[F]", note=""))
        avg_mean, avg_median, net_mean, net_median = _UTILITY_BASELINES[ds]
        avg_note = _AVG_NOTES[ds]
        net_note = f"{NETWORKS[ds]} trained on the ground-truth {'masks' if ds == 'SIIM' else 'boxes'}"
        for method, mean, median, note in (("Avg", avg_mean, avg_median, avg_note),
                                           ("Net", net_mean, net_median, net_note)):
            for statistic, value in (("mean", mean), ("median", median)):
                rows.append(dict(dataset=ds, method=method, state="", statistic=statistic,
                                 value=value, source="[F]", note=note))
        for method, value in _UTILITY_TEXT[ds].items():
            if method == "Net":
                note, state = f"abstract: {NETWORKS[ds]} AUPRC", ""
            else:
                end = "lowest" if method == "SIG" else "highest"
                note, state = f"abstract: {end} AUPRC of the eight methods (which method: read off the figure)", "trained"
            rows.append(dict(dataset=ds, method=method, state=state, statistic="mean",
                             value=value, source="[P]", note=note))
    return pd.DataFrame(rows, columns=["dataset", "method", "state", "statistic", "value", "source", "note"])


def paper_randomization(*, dataset: str | None = None) -> pd.DataFrame:
    """Cascading-randomization SSIM curves and their random-pair baselines (Arun et al. 2021).

    Parameters
    ----------
    dataset : {"SIIM", "RSNA"}, optional
        Keep one dataset (default: both).

    Returns
    -------
    pandas.DataFrame
        Columns ``dataset, method, state, fraction_randomized, value, source, note``.
        ``state`` is ``"Logits"``, ``"10"``, ``"5"`` or ``"1"`` (InceptionV3
        randomized from the logits down to block mixed<k>) with ``value`` the
        mean over images and replicates of the SSIM between the map at that
        state and the trained model's map; or ``"baseline"`` with ``value`` the
        mean SSIM between trained-model maps of two different images (50
        random pairs per image), the dashed line a method must fall below.
        ``fraction_randomized`` is the share of the ten Inception blocks that
        are randomized (NaN for the baseline): it places the paper's states on
        another architecture's cascade.

    References
    ----------
    .. [1] Arun et al. (2021), fig. 3 and its caption.
    """
    rows = []
    for ds in _datasets(dataset):
        for method in PAPER_METHODS:
            *curve, baseline = _RANDOMIZATION[ds][method]
            for (state, fraction), value in zip(RANDOMIZATION_STATES.items(), curve):
                rows.append(dict(dataset=ds, method=method, state=state, fraction_randomized=fraction,
                                 value=value, source="[F]", note=_RANDOMIZATION_NOTES[ds]))
            rows.append(dict(dataset=ds, method=method, state="baseline", fraction_randomized=float("nan"),
                             value=baseline, source="[F]",
                             note="; ".join(filter(None, ["random-pair baseline", _RANDOMIZATION_NOTES[ds]]))))
    return pd.DataFrame(rows, columns=["dataset", "method", "state", "fraction_randomized", "value", "source", "note"])


def paper_repeatability(*, dataset: str | None = None, criterion: str | None = None) -> pd.DataFrame:
    """Repeatability and reproducibility (mean SSIM over test images) of Arun et al. (2021).

    Parameters
    ----------
    dataset : {"SIIM", "RSNA"}, optional
        Keep one dataset (default: both).
    criterion : {"repeatability", "reproducibility"}, optional
        Keep one criterion (default: both).

    Returns
    -------
    pandas.DataFrame
        Columns ``dataset, criterion, method, statistic, value, source, note``.
        Repeatability compares two InceptionV3 replicates, reproducibility
        InceptionV3 with DenseNet121. ``method == "Net"`` is the network
        baseline (SSIM between the outputs of two independently trained
        U-Nets on SIIM, RetinaNets on RSNA), one line drawn on the paper's
        combined figure and therefore listed under both criteria.

    References
    ----------
    .. [1] Arun et al. (2021), fig. 4.
    """
    criteria = ("repeatability", "reproducibility")
    if criterion is not None and criterion not in criteria:
        raise PaperReferenceError(f"unknown criterion {criterion!r}; valid: {', '.join(criteria)}")
    keep = criteria if criterion is None else (criterion,)
    rows = []
    for ds in _datasets(dataset):
        for k, crit in enumerate(criteria):
            if crit not in keep:
                continue
            for method, values in zip(PAPER_METHODS, _REPEATABILITY[ds]):
                rows.append(dict(dataset=ds, criterion=crit, method=method, statistic="mean",
                                 value=values[k], source="[F]", note=""))
            rows.append(dict(dataset=ds, criterion=crit, method="Net", statistic="mean",
                             value=_REPEATABILITY_NET[ds], source="[F]",
                             note=f"network baseline: two independently trained {NETWORKS[ds]}s"))
    return pd.DataFrame(rows, columns=["dataset", "criterion", "method", "statistic", "value", "source", "note"])
