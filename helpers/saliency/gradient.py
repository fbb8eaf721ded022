"""Vanilla gradient (GRAD) and SmoothGrad (SG) as Arun et al. computed them with PAIR saliency.

References
----------
.. [1] Simonyan, K., Vedaldi, A., Zisserman, A. (2014). Deep inside
   convolutional networks: visualising image classification models and
   saliency maps. ICLR workshop. arXiv:1312.6034
.. [2] Smilkov, D., Thorat, N., Kim, B., Viegas, F., Wattenberg, M. (2017).
   SmoothGrad: removing noise by adding noise. arXiv:1706.03825
.. [3] Arun, N. et al. (2021). Assessing the trustworthiness of saliency maps
   for localizing abnormalities in medical imaging. Radiology: Artificial
   Intelligence 3(6), e200267. doi:10.1148/ryai.2021200267
.. [4] PAIR saliency, ``saliency/core/base.py`` (``GetSmoothedMask``).
"""

from __future__ import annotations

from torch import Tensor, nn

from captum.attr import Saliency

from helpers.saliency import _engine as E

__all__ = ["gradient", "smoothgrad", "smoothgrad_passes"]


def gradient(model: nn.Module, images: Tensor, *, target: Tensor | None) -> Tensor:
    """GRAD: the signed gradient of the explained logit w.r.t. the input (Captum ``Saliency(abs=False)``).

    Parameters
    ----------
    model : nn.Module
    images : Tensor ``(N, C, H, W)``
    target : LongTensor ``(N,)`` or None
        ``None``: the predicted class, taken from the same forward pass.

    Returns
    -------
    Tensor ``(N, C, H, W)``
    """
    forward, target = E.forward_for(model, target)
    out = Saliency(forward).attribute(images.clone().requires_grad_(), target=0 if target is None else target, abs=False)
    E.progress_update(len(images))
    return out.detach()


def smoothgrad(
    model: nn.Module,
    images: Tensor,
    *,
    target: Tensor,
    n_samples: int = 25,
    noise_level: float = 0.15,
    squared: bool = True,
    seed: int = 0,
    internal_batch_size: int | None = None,
) -> Tensor:
    """SG: the mean (squared) gradient over noisy copies of each image, as PAIR's ``GetSmoothedMask``.

    Parameters
    ----------
    model : nn.Module
    images : Tensor ``(N, C, H, W)``
    target : LongTensor ``(N,)``
        Class explained at every noisy copy (the class predicted for the clean
        image when ``explain(target="predicted")``).
    n_samples : int, optional
        Noisy copies per image (25, PAIR's default used by Arun et al.).
    noise_level : float, optional
        Noise standard deviation as a fraction of each image's own range:
        ``sigma = noise_level * (max - min)`` (PAIR's ``stdev_spread``).
    squared : bool, optional
        ``True``: mean of squared gradients (PAIR ``magnitude=True``, "SmoothGrad²",
        the paper's setting); ``False``: mean gradient (Smilkov et al.).
    seed : int, optional
        Noise seed (noise is drawn per image, see :func:`helpers.saliency._engine.image_noise`).
    internal_batch_size : int, optional
        Noisy copies per forward+backward pass (default: all copies of the batch).

    Returns
    -------
    Tensor ``(N, C, H, W)``
    """
    label = "SG"
    n_samples = E.check_int(label, "n_samples", n_samples, minimum=1)
    noise_level = E.check_float(label, "noise_level", noise_level, minimum=0.0)
    E.check_choice(label, "squared", squared, (True, False))
    seed = E.check_int(label, "seed", seed, minimum=0)
    flat = images.reshape(len(images), -1)
    sigma = noise_level * (flat.max(dim=1).values - flat.min(dim=1).values)
    noise = E.image_noise(images, n_samples, seed=seed)
    return E.integrate(
        model,
        images,
        target,
        alphas=[1.0],
        weights=[1.0],
        noise=noise,
        sigma=sigma,
        multiply_by_diff=False,
        square=bool(squared),
        internal_batch_size=internal_batch_size or len(images) * n_samples,
    )


def smoothgrad_passes(settings) -> int:
    """Forward+backward passes per image of SG."""
    return int(settings["n_samples"])
