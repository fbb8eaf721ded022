"""Shared machinery of the gradient methods: model mode, inputs, noise and the batched path integrator.

Why a hand-written integrator on top of Captum's :class:`~captum.attr.Saliency`
------------------------------------------------------------------------------
SmoothGrad, integrated gradients, SmoothGrad-IG and XRAI's base attribution
are all weighted sums of input gradients at perturbed copies of each image.
Captum computes each gradient (``Saliency(abs=False)``); what Captum cannot do
is what Arun et al.'s settings need:

* ``NoiseTunnel`` takes **one** noise ``stdevs`` for the whole batch, while
  PAIR's SmoothGrad draws noise with ``sigma = 0.15 * (max - min)`` of **each**
  image;
* SmoothGrad-IG is noise *around* a path integral; nesting
  ``NoiseTunnel(IntegratedGradients)`` would integrate each noisy copy in a
  separate call instead of batching noise samples and integration steps
  together;
* PAIR's integration rule (the plain mean of the gradients at
  ``alpha = linspace(0, 1, n)``, both ends included) is not one of Captum's
  public rules;
* the noise of an image must not depend on which other images share its batch
  (the map cache computes missing images only), so it is drawn from a
  generator seeded by ``(seed, pixels of the image)``.

:func:`integrate` therefore enumerates all (image, noise sample or baseline,
integration step) points, sends them through the model in chunks of
``internal_batch_size`` without a Python loop per sample, and accumulates the
weighted gradients per (image, sample).
"""

from __future__ import annotations

import contextlib
import contextvars
import hashlib
import warnings
from typing import Any, Iterator, Sequence

import numpy as np
import torch

# Captum imports tqdm.auto, which in a Jupyter kernel without ipywidgets warns
# "IProgress not found" at import: a stderr block at the top of every chapter
# of the book about progress bars we never show through Captum. Only that
# message is silenced.
warnings.filterwarnings("ignore", message="IProgress not found", category=Warning)
from captum.attr import Saliency  # noqa: E402
from captum.attr._utils.approximation_methods import SUPPORTED_METHODS, approximation_parameters  # noqa: E402
from torch import Tensor, nn

from helpers.saliency._errors import SaliencyError

__all__ = [
    "attribution_mode",
    "model_device",
    "as_image_tensor",
    "PredictedLogit",
    "forward_for",
    "image_digests",
    "image_noise",
    "scalar_baselines",
    "integrate",
    "paper_rule",
    "quadrature",
    "check_int",
    "check_float",
    "check_choice",
    "progress_update",
    "progress_scope",
]

# ---------------------------------------------------------------------------
# model state


@contextlib.contextmanager
def attribution_mode(model: nn.Module) -> Iterator[nn.Module]:
    """Eval mode and no parameter gradients inside the block; the previous state is restored after.

    Attributions differentiate with respect to the *input* only, so parameters
    need no ``requires_grad`` (autograd then keeps fewer tensors). Each
    module's ``training`` flag and each parameter's ``requires_grad`` flag are
    restored exactly, even when they were mixed.
    """
    if not isinstance(model, nn.Module):
        raise SaliencyError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    training = [(m, m.training) for m in model.modules()]
    grads = [(p, p.requires_grad) for p in model.parameters()]
    model.eval()
    for p, _ in grads:
        p.requires_grad_(False)
    try:
        yield model
    finally:
        for m, flag in training:
            m.training = flag
        for p, flag in grads:
            p.requires_grad_(flag)


def model_device(model: nn.Module) -> torch.device:
    """Device of the model's first parameter or buffer (CPU for a parameter-free model)."""
    for tensor in model.parameters():
        return tensor.device
    for tensor in model.buffers():
        return tensor.device
    return torch.device("cpu")


def as_image_tensor(images: Any, *, label: str = "images") -> Tensor:
    """``images`` (numpy or torch; ``(N, H, W)`` or ``(N, C, H, W)``) as a CPU ``float32`` ``(N, C, H, W)`` tensor.

    Raises
    ------
    SaliencyError
        Wrong shape, empty batch, non-finite values or values outside ``[0, 1]``
        (the data contract; the black baseline of integrated gradients is the
        all-zero image only in that range).
    """
    if isinstance(images, Tensor):
        x = images.detach().to("cpu", torch.float32)
    else:
        try:
            x = torch.as_tensor(np.asarray(images, dtype=np.float32))
        except (TypeError, ValueError) as exc:
            raise SaliencyError(f"{label}: expected an array of images, got {type(images).__name__} ({exc})") from None
    if x.ndim == 3:
        x = x[:, None]
    if x.ndim != 4 or min(x.shape) < 1:
        raise SaliencyError(f"{label}: expected images of shape (N, H, W) or (N, C, H, W), got {tuple(x.shape)}")
    if not torch.isfinite(x).all():
        raise SaliencyError(f"{label}: images contain NaN or inf")
    lo, hi = float(x.min()), float(x.max())
    if lo < -1e-4 or hi > 1.0 + 1e-4:
        raise SaliencyError(
            f"{label}: images must lie in [0, 1] (data contract), got values in [{lo:.4g}, {hi:.4g}]"
        )
    return x.contiguous()


# ---------------------------------------------------------------------------
# targets


class PredictedLogit(nn.Module):
    """``model`` followed by "the logit of the arg-max class", shape ``(N, 1)``.

    Explaining output 0 of this module explains the predicted class with the
    same forward pass that computes the prediction (no separate forward to
    resolve the target). Only valid where the gradient is taken at the
    unperturbed input (GRAD, GBP, GradCAM); ties go to the lowest class, as
    :func:`torch.argmax`.
    """

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, x: Tensor) -> Tensor:  # noqa: D102
        logits = self.model(x)
        if logits.ndim != 2:
            raise SaliencyError(f"model must return logits of shape (N, classes), got {tuple(logits.shape)}")
        return logits.gather(1, logits.detach().argmax(dim=1, keepdim=True))


def forward_for(model: nn.Module, target: Tensor | None) -> tuple[nn.Module, Tensor]:
    """The module to differentiate and the per-image output index: ``target`` or the fused predicted logit."""
    if target is None:
        return PredictedLogit(model), None  # type: ignore[return-value]
    return model, target


# ---------------------------------------------------------------------------
# noise


def image_digests(x: Tensor) -> list[bytes]:
    """SHA-256 of each image's ``float32`` pixels (CPU, C order)."""
    arr = x.detach().to("cpu", torch.float32).contiguous().numpy()
    return [hashlib.sha256(np.ascontiguousarray(a).tobytes()).digest() for a in arr]


def image_noise(x: Tensor, n_samples: int, *, seed: int) -> Tensor:
    """Standard normal noise ``(N, n_samples, C, H, W)`` on ``x``'s device, seeded per image.

    Image ``i`` draws from ``torch.Generator().manual_seed(s_i)`` with
    ``s_i`` derived from ``(seed, sha256 of its pixels)``: the same image gets
    the same noise whatever its batch, position or device, and different images
    get independent noise (shared noise would correlate the residual noise of
    SmoothGrad maps of different images, inflating the random-pair SSIM
    baseline). Drawn on the CPU, so CPU and GPU runs use identical noise.
    """
    seed = int(seed)
    out = torch.empty((x.shape[0], n_samples, *x.shape[1:]), dtype=torch.float32)
    for i, digest in enumerate(image_digests(x)):
        mixed = hashlib.sha256(seed.to_bytes(8, "little", signed=True) + digest).digest()
        gen = torch.Generator().manual_seed(int.from_bytes(mixed[:8], "little") & (2**63 - 1))
        out[i] = torch.randn((n_samples, *x.shape[1:]), generator=gen, dtype=torch.float32)
    return out.to(x.device)


def scalar_baselines(x: Tensor, baselines: Sequence[Any], *, label: str) -> Tensor:
    """Per-image scalar baselines ``(N, len(baselines))``: a float (input space) or ``"min"``/``"max"`` of each image."""
    cols = []
    flat = x.detach().reshape(len(x), -1)
    for b in baselines:
        if isinstance(b, str):
            if b == "min":
                cols.append(flat.min(dim=1).values)
            elif b == "max":
                cols.append(flat.max(dim=1).values)
            else:
                raise SaliencyError(f"{label}: unknown baseline {b!r}; expected a number in [0, 1], 'min' or 'max'")
        elif isinstance(b, (int, float)) and not isinstance(b, bool) and 0.0 <= float(b) <= 1.0:
            cols.append(torch.full((len(x),), float(b), dtype=x.dtype, device=x.device))
        else:
            raise SaliencyError(
                f"{label}: baseline {b!r} is not valid; expected a number in [0, 1] (0 = black image), 'min' or 'max'"
            )
    return torch.stack(cols, dim=1)


# ---------------------------------------------------------------------------
# integration rules


def paper_rule(n_steps: int) -> tuple[list[float], list[float]]:
    """PAIR's rule used by Arun et al.: weights ``1/n`` at ``alpha = linspace(0, 1, n)`` (both ends included).

    Returns ``(weights, alphas)``. The weights sum to 1, so the rule is exact
    for a model that is linear in its input.
    """
    alphas = np.linspace(0.0, 1.0, n_steps).tolist()
    return [1.0 / n_steps] * n_steps, alphas


def quadrature(rule: str, n_steps: int, *, label: str) -> tuple[list[float], list[float]]:
    """``(weights, alphas)`` of ``rule``: ``"paper"`` or one of Captum's rules.

    Captum's rules come from Captum itself
    (``captum.attr._utils.approximation_methods``), so they match
    :class:`captum.attr.IntegratedGradients` exactly (a test checks it). Note
    that Captum's ``riemann_trapezoid`` gives weights that sum to
    ``1 - 1/n``, not 1.
    """
    if rule == "paper":
        return paper_rule(n_steps)
    if rule not in SUPPORTED_METHODS:
        raise SaliencyError(f"{label}: unknown rule {rule!r}; valid rules: paper, {', '.join(SUPPORTED_METHODS)}")
    if rule.startswith("riemann") and n_steps < 2:
        raise SaliencyError(f"{label}: Captum's {rule} rule needs n_steps >= 2, got {n_steps}")
    step_sizes, alphas = approximation_parameters(rule)
    return list(step_sizes(n_steps)), list(alphas(n_steps))


# ---------------------------------------------------------------------------
# setting checks


def check_int(label: str, name: str, value: Any, *, minimum: int) -> int:
    """``value`` as an int ``>= minimum``, else :class:`SaliencyError`."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or int(value) < minimum:
        raise SaliencyError(f"{label}: setting {name} must be an integer >= {minimum}, got {value!r}")
    return int(value)


def check_float(label: str, name: str, value: Any, *, minimum: float) -> float:
    """``value`` as a finite float ``>= minimum``, else :class:`SaliencyError`."""
    if isinstance(value, bool) or not isinstance(value, (int, float, np.floating, np.integer)):
        raise SaliencyError(f"{label}: setting {name} must be a number >= {minimum}, got {value!r}")
    value = float(value)
    if not np.isfinite(value) or value < minimum:
        raise SaliencyError(f"{label}: setting {name} must be a finite number >= {minimum}, got {value!r}")
    return value


def check_choice(label: str, name: str, value: Any, choices: Sequence[Any]) -> Any:
    """``value`` if it is one of ``choices``, else :class:`SaliencyError` listing them."""
    if value not in choices:
        raise SaliencyError(f"{label}: setting {name} must be one of {', '.join(map(repr, choices))}; got {value!r}")
    return value


# ---------------------------------------------------------------------------
# progress (cosmetic; set by explain)

_PROGRESS: contextvars.ContextVar[Any] = contextvars.ContextVar("helpers_saliency_progress", default=None)


@contextlib.contextmanager
def progress_scope(bar: Any) -> Iterator[None]:
    """Make ``bar`` (a tqdm bar or ``None``) receive :func:`progress_update` calls inside the block."""
    token = _PROGRESS.set(bar)
    try:
        yield
    finally:
        _PROGRESS.reset(token)


def progress_update(n_passes: int) -> None:
    """Report ``n_passes`` forward+backward passes to the current progress bar, if any."""
    bar = _PROGRESS.get()
    if bar is not None:
        bar.update(n_passes)


# ---------------------------------------------------------------------------
# the batched path integrator


def integrate(
    model: nn.Module,
    x: Tensor,
    target: Tensor,
    *,
    alphas: Sequence[float],
    weights: Sequence[float],
    baselines: Tensor | None = None,
    noise: Tensor | None = None,
    sigma: Tensor | None = None,
    multiply_by_diff: bool = True,
    square: bool = False,
    internal_batch_size: int,
) -> Tensor:
    """Batched weighted sums of input gradients along straight paths, averaged over samples.

    For image ``b`` and sample ``j`` (a noise draw or a baseline) let the end
    point be ``e_bj = x_b + sigma_b * noise_bj`` (``x_b`` without noise) and
    the start point ``s_bj`` the scalar baseline ``baselines[b, j]`` (0
    without baselines). With ``g(p)`` the gradient of logit ``target_b`` at
    ``p``::

        A_bj = (sum_i w_i g(s_bj + alpha_i (e_bj - s_bj))) * (e_bj - s_bj)   # multiply_by_diff
        A_bj =  sum_i w_i g(s_bj + alpha_i (e_bj - s_bj))                     # otherwise
        out_b = mean_j A_bj**2  (square)  or  mean_j A_bj

    SmoothGrad is ``alphas=[1]``, ``weights=[1]``, no diff; integrated
    gradients is one baseline and the rule's ``(weights, alphas)``;
    SmoothGrad-IG combines both; XRAI's base attribution uses two baselines.

    Parameters
    ----------
    model : nn.Module
        In eval mode; gradients are taken with :class:`captum.attr.Saliency`.
    x : Tensor ``(B, C, H, W)``
    target : LongTensor ``(B,)``
    alphas, weights : sequences of float, same length ``I``
    baselines : Tensor ``(B, J)``, optional
    noise : Tensor ``(B, J, C, H, W)``, optional
        Standard normal draws, scaled by ``sigma``.
    sigma : Tensor ``(B,)``, optional
        Noise standard deviation of each image.
    multiply_by_diff, square : bool
    internal_batch_size : int
        Points per forward+backward pass.

    Returns
    -------
    Tensor ``(B, C, H, W)``, detached.
    """
    n_img = x.shape[0]
    n_alpha = len(alphas)
    if n_alpha != len(weights) or n_alpha < 1:
        raise SaliencyError("integrate: alphas and weights must be non-empty and of the same length")
    if noise is not None:
        n_groups = noise.shape[1]
        if sigma is None:
            raise SaliencyError("integrate: noise needs sigma")
    elif baselines is not None:
        n_groups = baselines.shape[1]
    else:
        n_groups = 1
    if baselines is None:
        baselines = torch.zeros((n_img, n_groups), dtype=x.dtype, device=x.device)
    if baselines.shape != (n_img, n_groups):
        raise SaliencyError(f"integrate: baselines must have shape {(n_img, n_groups)}, got {tuple(baselines.shape)}")
    device = x.device
    alpha_t = torch.tensor(alphas, dtype=x.dtype, device=device)
    weight_t = torch.tensor(weights, dtype=x.dtype, device=device)
    grad_sums = torch.zeros((n_img * n_groups, *x.shape[1:]), dtype=x.dtype, device=device)
    saliency = Saliency(model)
    total = n_img * n_groups * n_alpha
    chunk = max(1, int(internal_batch_size))
    for start in range(0, total, chunk):
        idx = torch.arange(start, min(start + chunk, total), device=device)
        b = idx // (n_groups * n_alpha)
        j = (idx // n_alpha) % n_groups
        i = idx % n_alpha
        end = x[b]
        if noise is not None:
            end = end + sigma[b].view(-1, 1, 1, 1) * noise[b, j]
        base = baselines[b, j].view(-1, 1, 1, 1)
        points = (base + alpha_t[i].view(-1, 1, 1, 1) * (end - base)).requires_grad_()
        grads = saliency.attribute(points, target=target[b], abs=False)
        grad_sums.index_add_(0, b * n_groups + j, grads.detach() * weight_t[i].view(-1, 1, 1, 1))
        progress_update(len(idx))
    grad_sums = grad_sums.view(n_img, n_groups, *x.shape[1:])
    if multiply_by_diff:
        ends = x[:, None].expand(n_img, n_groups, *x.shape[1:])
        if noise is not None:
            ends = ends + sigma.view(-1, 1, 1, 1, 1) * noise
        grad_sums = grad_sums * (ends - baselines.view(n_img, n_groups, 1, 1, 1))
    if square:
        grad_sums = grad_sums * grad_sums
    return grad_sums.mean(dim=1)
