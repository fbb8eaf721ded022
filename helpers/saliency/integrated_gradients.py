"""Integrated gradients (IG) and SmoothGrad around integrated gradients (SIG), as in Arun et al.

Arun et al. call PAIR's ``IntegratedGradients.GetMask(x_steps=10,
x_baseline=-1)``: the mean of the gradients at ``alpha = linspace(0, 1, 10)``
(both ends included) times ``x - baseline``, from the black image. Our models
take ``[0, 1]`` images and map them to ``[-1, 1]`` in their first module, so
the same black baseline is the all-zero image here.

Integration rules (``rule``)
----------------------------
``"paper"`` (default)
    PAIR's rule above. It is the default because it reproduces the paper and,
    its weights summing to one, it is exact for a model linear in its input.
``"gausslegendre"``, ``"riemann_trapezoid"``, ``"riemann_left"``, ``"riemann_right"``, ``"riemann_middle"``
    Captum's rules, with Captum's own nodes and weights (identical to
    :class:`captum.attr.IntegratedGradients`). Gauss-Legendre converges
    fastest for smooth paths. Captum's trapezoid weights sum to ``1 - 1/n``
    (not 1), so at 10 steps its attributions are about 10 % too small.

References
----------
.. [1] Sundararajan, M., Taly, A., Yan, Q. (2017). Axiomatic attribution for
   deep networks. ICML. arXiv:1703.01365
.. [2] Smilkov, D. et al. (2017). SmoothGrad: removing noise by adding noise.
   arXiv:1706.03825
.. [3] Arun, N. et al. (2021). Assessing the trustworthiness of saliency maps
   for localizing abnormalities in medical imaging. Radiology: Artificial
   Intelligence 3(6), e200267. doi:10.1148/ryai.2021200267
.. [4] PAIR saliency, ``saliency/core/integrated_gradients.py`` and
   ``saliency/core/base.py`` (``GetSmoothedMask``).
"""

from __future__ import annotations

from torch import Tensor, nn

from helpers.saliency import _engine as E
from helpers.saliency._errors import SaliencyError

__all__ = ["integrated_gradients", "smooth_integrated_gradients", "ig_passes", "sig_passes"]


def _check_baseline(label: str, baseline):
    if isinstance(baseline, (list, tuple)):
        raise SaliencyError(f"{label}: baseline must be one number in [0, 1], 'min' or 'max', got {baseline!r}")
    return baseline


def integrated_gradients(
    model: nn.Module,
    images: Tensor,
    *,
    target: Tensor,
    n_steps: int = 10,
    baseline: float | str = 0.0,
    rule: str = "paper",
    internal_batch_size: int | None = None,
) -> Tensor:
    """IG: path integral of the gradient from a constant ``baseline`` image to each image.

    Parameters
    ----------
    model : nn.Module
    images : Tensor ``(N, C, H, W)``
    target : LongTensor ``(N,)``
    n_steps : int, optional
        Integration points (10 in the paper).
    baseline : float or {"min", "max"}, optional
        Value of the constant baseline image in input space (``0.0``: black,
        the paper's), or each image's own minimum/maximum.
    rule : str, optional
        ``"paper"`` or a Captum rule (see the module docstring).
    internal_batch_size : int, optional
        Path points per forward+backward pass (default: all points of the batch).

    Returns
    -------
    Tensor ``(N, C, H, W)``
    """
    label = "IG"
    n_steps = E.check_int(label, "n_steps", n_steps, minimum=1)
    weights, alphas = E.quadrature(rule, n_steps, label=label)
    base = E.scalar_baselines(images, [_check_baseline(label, baseline)], label=label)
    return E.integrate(
        model,
        images,
        target,
        alphas=alphas,
        weights=weights,
        baselines=base,
        multiply_by_diff=True,
        internal_batch_size=internal_batch_size or len(images) * n_steps,
    )


def smooth_integrated_gradients(
    model: nn.Module,
    images: Tensor,
    *,
    target: Tensor,
    n_samples: int = 25,
    noise_level: float = 0.15,
    squared: bool = True,
    n_steps: int = 10,
    baseline: float | str = 0.0,
    rule: str = "paper",
    seed: int = 0,
    internal_batch_size: int | None = None,
) -> Tensor:
    """SIG: SmoothGrad (squared, PAIR ``GetSmoothedMask``) around integrated gradients.

    For each of ``n_samples`` noisy copies ``x + sigma * eps`` (``sigma =
    noise_level * (max - min)`` of the clean image), IG from the fixed
    ``baseline`` to the noisy copy with ``n_steps`` points; the result is the
    mean of the squared (``squared=True``) IG attributions. All
    ``n_samples * n_steps`` points of a batch go through the model together.

    Parameters
    ----------
    model, images, target
        As :func:`integrated_gradients`.
    n_samples : int, optional
        Noisy copies (25).
    noise_level : float, optional
        Noise standard deviation as a fraction of each image's range (0.15).
    squared : bool, optional
        Mean of squared IG attributions (PAIR ``magnitude=True``, the paper's).
    n_steps, baseline, rule
        IG settings of each noisy copy (10 steps from black, PAIR's rule).
    seed : int, optional
        Noise seed.
    internal_batch_size : int, optional
        Points per forward+backward pass.

    Returns
    -------
    Tensor ``(N, C, H, W)``
    """
    label = "SIG"
    n_samples = E.check_int(label, "n_samples", n_samples, minimum=1)
    noise_level = E.check_float(label, "noise_level", noise_level, minimum=0.0)
    E.check_choice(label, "squared", squared, (True, False))
    n_steps = E.check_int(label, "n_steps", n_steps, minimum=1)
    seed = E.check_int(label, "seed", seed, minimum=0)
    weights, alphas = E.quadrature(rule, n_steps, label=label)
    base = E.scalar_baselines(images, [_check_baseline(label, baseline)], label=label).expand(-1, n_samples)
    flat = images.reshape(len(images), -1)
    sigma = noise_level * (flat.max(dim=1).values - flat.min(dim=1).values)
    noise = E.image_noise(images, n_samples, seed=seed)
    return E.integrate(
        model,
        images,
        target,
        alphas=alphas,
        weights=weights,
        baselines=base.contiguous(),
        noise=noise,
        sigma=sigma,
        multiply_by_diff=True,
        square=bool(squared),
        internal_batch_size=internal_batch_size or len(images) * n_samples * n_steps,
    )


def ig_passes(settings) -> int:
    """Forward+backward passes per image of IG."""
    return int(settings["n_steps"])


def sig_passes(settings) -> int:
    """Forward+backward passes per image of SIG."""
    return int(settings["n_samples"]) * int(settings["n_steps"])
