"""Each method against its definition on tiny models (analytic or hand-computed references)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from captum.attr import IntegratedGradients
from conftest import LinearModel, blob_images, smooth_model, tiny_cnn

import helpers.saliency as S
from helpers.saliency import _engine as E
from helpers.saliency.gradcam import resize_bilinear_tf1
from helpers.saliency.guided_backprop import _guided_backprop
from helpers.saliency.postprocess import visualize_grayscale
from helpers.saliency.xrai import xrai_attribution


def _grad(model, x, target):
    x = torch.as_tensor(x)[:, None].clone().requires_grad_()
    logits = model(x)
    (g,) = torch.autograd.grad(logits.gather(1, torch.as_tensor(target)[:, None]).sum(), x)
    return g[:, 0].detach().numpy()


def test_grad_is_the_input_gradient_of_the_explained_logit(tiny, images16):
    target = [1, 0, 1]
    raw = S.attribute(tiny, images16, "GRAD", target=target)
    np.testing.assert_allclose(raw, _grad(tiny.eval(), images16, target), rtol=1e-5, atol=1e-7)
    maps = S.explain(tiny, images16, "GRAD", target=target)
    np.testing.assert_allclose(maps, visualize_grayscale(raw)[0], atol=1e-6)


def test_predicted_target_fused_in_the_forward_equals_the_resolved_target(tiny, images16):
    predicted = S.resolve_target(tiny, images16)
    for method, settings in (("GRAD", {}), ("GBP", {}), ("GCAM", {"layer": "conv2"}), ("GGCAM", {"layer": "conv2"})):
        fused = S.attribute(tiny, images16, method, **settings)  # target=None: argmax inside the same forward
        explicit = S.attribute(tiny, images16, method, target=predicted, **settings)
        np.testing.assert_allclose(fused, explicit, rtol=1e-6, atol=1e-8, err_msg=method)


def test_target_resolution_predicted_vs_positive():
    model = tiny_cnn(seed=3)
    with torch.no_grad():
        model.fc.bias[:] = torch.tensor([50.0, -50.0])  # always predicts class 0
    images = blob_images(2, 16, seed=4)
    assert S.resolve_target(model, images).tolist() == [0, 0]
    assert S.resolve_target(model, images, "predicted").tolist() == [0, 0]
    assert S.resolve_target(model, images, "positive").tolist() == [1, 1]
    assert S.resolve_target(model, images, 1).tolist() == [1, 1]
    assert S.resolve_target(model, images, [1, 0]).tolist() == [1, 0]
    predicted = S.attribute(model, images, "GRAD")
    positive = S.attribute(model, images, "GRAD", target="positive")
    assert not np.allclose(predicted, positive)
    np.testing.assert_allclose(positive, _grad(model.eval(), images, [1, 1]), rtol=1e-5, atol=1e-7)


def test_bad_targets_raise(tiny, images16):
    for bad, match in (("negative", "unknown target"), (2, "out of range"), ([0, 1], "3 images"), (True, "boolean"),
                       ([0.5, 1, 0], "ints")):
        with pytest.raises(S.SaliencyError, match=match):
            S.resolve_target(tiny, images16, bad)


def test_model_mode_and_parameter_flags_are_restored(tiny, images16):
    tiny.train()
    tiny.fc.weight.requires_grad_(False)
    S.explain(tiny, images16, "SG", n_samples=2)
    assert tiny.training and all(m.training for m in tiny.modules())
    assert not tiny.fc.weight.requires_grad and tiny.conv1.weight.requires_grad


def test_smoothgrad_without_noise_is_the_squared_gradient(tiny, images16):
    grad = S.attribute(tiny, images16, "GRAD", target=1)
    sg2 = S.attribute(tiny, images16, "SG", target=1, n_samples=3, noise_level=0.0)
    np.testing.assert_allclose(sg2, grad**2, rtol=1e-5, atol=1e-12)
    sg = S.attribute(tiny, images16, "SG", target=1, n_samples=3, noise_level=0.0, squared=False)
    np.testing.assert_allclose(sg, grad, rtol=1e-5, atol=1e-9)


def test_smoothgrad_noise_is_scaled_by_each_image_range(tiny):
    images = blob_images(2, 16, seed=5)
    images[1] = 0.4 + 0.2 * images[1]  # range 0.2 instead of 1
    x = torch.as_tensor(images)[:, None]
    n, level = 4, 0.15
    noise = E.image_noise(x, n, seed=7)
    expected = []
    model = tiny.eval()
    for b in range(2):
        sigma = level * float(x[b].max() - x[b].min())
        noisy = (x[b : b + 1] + sigma * noise[b]).numpy()[:, 0]
        expected.append((_grad(model, noisy, [1] * n) ** 2).mean(axis=0))
    got = S.attribute(tiny, images, "SG", target=1, n_samples=n, noise_level=level, seed=7)
    np.testing.assert_allclose(got, np.stack(expected), rtol=1e-4, atol=1e-12)


def test_noise_depends_on_seed_and_pixels_only(tiny):
    images = blob_images(4, 16, seed=6)
    a = S.explain(tiny, images, "SG", n_samples=3, seed=1)
    b = S.explain(tiny, images, "SG", n_samples=3, seed=1, batch_size=1, internal_batch_size=2)
    alone = S.explain(tiny, images[2:3], "SG", n_samples=3, seed=1)
    other_seed = S.explain(tiny, images, "SG", n_samples=3, seed=2)
    np.testing.assert_allclose(a, b, atol=1e-6)
    np.testing.assert_allclose(a[2:3], alone, atol=1e-6)
    assert not np.allclose(a, other_seed, atol=1e-3)
    x = torch.as_tensor(images)[:, None]
    noise = E.image_noise(x, 2, seed=0)
    assert not torch.allclose(noise[0], noise[1])  # different images, independent noise


def test_integrated_gradients_are_exact_for_a_linear_model_with_the_paper_rule():
    size = 8
    model = LinearModel(size)
    images = blob_images(2, size, seed=2)
    w = model.weight.detach().numpy()[1].reshape(size, size)
    exact = w * (images - 0.0)
    paper = S.attribute(model, images, "IG", target=1, n_steps=10)
    np.testing.assert_allclose(paper, exact, rtol=1e-5, atol=1e-6)
    # Captum's trapezoid weights sum to 1 - 1/n: attributions shrink by that factor
    trapezoid = S.attribute(model, images, "IG", target=1, n_steps=10, rule="riemann_trapezoid")
    np.testing.assert_allclose(trapezoid, 0.9 * exact, rtol=1e-5, atol=1e-6)
    white = S.attribute(model, images, "IG", target=1, n_steps=4, baseline=1.0)
    np.testing.assert_allclose(white, w * (images - 1.0), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("rule", ["gausslegendre", "riemann_trapezoid", "riemann_middle"])
def test_captum_rules_match_captum_integrated_gradients(tiny, images16, rule):
    ours = S.attribute(tiny, images16, "IG", target=1, n_steps=7, rule=rule, internal_batch_size=5)
    x = torch.as_tensor(images16)[:, None]
    captum = IntegratedGradients(tiny.eval()).attribute(x, baselines=0.0, target=1, n_steps=7, method=rule)
    np.testing.assert_allclose(ours, captum[:, 0].detach().numpy(), rtol=1e-4, atol=1e-7)


def test_integrated_gradients_completeness_on_a_smooth_model():
    model = smooth_model(seed=1).eval()
    images = blob_images(3, 12, seed=3)
    x = torch.as_tensor(images)[:, None]
    with torch.no_grad():
        delta = (model(x)[:, 1] - model(torch.zeros_like(x))[:, 1]).numpy()
    for rule in ("paper", "gausslegendre"):
        total = S.attribute(model, images, "IG", target=1, n_steps=300, rule=rule, internal_batch_size=300).sum(axis=(1, 2))
        np.testing.assert_allclose(total, delta, rtol=0.02, atol=1e-4 * np.abs(delta).max())
    # the check above can fail: with steep units (conv weights x 50) the integrand bends and 1 step is far off
    with torch.no_grad():
        model.conv.weight.mul_(50.0)
        far = (model(x)[:, 1] - model(torch.zeros_like(x))[:, 1]).numpy()
    bent = S.attribute(model, images, "IG", target=1, n_steps=1, rule="paper").sum(axis=(1, 2))
    assert not np.allclose(bent, far, rtol=0.02)


def test_smooth_ig_without_noise_is_the_squared_ig(tiny, images16):
    ig = S.attribute(tiny, images16, "IG", target=0, n_steps=5)
    sig = S.attribute(tiny, images16, "SIG", target=0, n_samples=2, noise_level=0.0, n_steps=5)
    np.testing.assert_allclose(sig, ig**2, rtol=1e-5, atol=1e-14)


def test_xrai_base_attribution_is_the_mean_of_black_and_white_ig(tiny, images16):
    x = torch.as_tensor(images16)[:, None]
    target = torch.tensor([1, 1, 0])
    with E.attribution_mode(tiny):
        base = xrai_attribution(tiny, x, target=target, n_steps=6, internal_batch_size=7).numpy()
    lo = S.attribute(tiny, images16, "IG", target=[1, 1, 0], n_steps=6, baseline="min")
    hi = S.attribute(tiny, images16, "IG", target=[1, 1, 0], n_steps=6, baseline="max")
    np.testing.assert_allclose(base, (lo + hi) / 2, rtol=1e-5, atol=1e-8)


def test_gradcam_matches_a_hand_computation(tiny, images16):
    model = tiny.eval()
    x = torch.as_tensor(images16)[:, None]
    feats = {}
    handle = model.conv2.register_forward_hook(lambda m, i, o: feats.setdefault("a", o))
    logits = model(x)
    handle.remove()
    acts = feats["a"]
    (grads,) = torch.autograd.grad(logits[:, 1].sum(), acts)
    weights = grads.mean(dim=(2, 3), keepdim=True)
    cam = torch.relu((weights * acts).sum(dim=1, keepdim=True)).detach()
    expected = F.interpolate(cam, size=(16, 16), mode="bilinear", align_corners=False)[:, 0].numpy()
    got = S.attribute(tiny, images16, "GCAM", target=1, layer="conv2")
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-7)
    assert cam.shape[-1] == 8  # the layer map really was upsampled
    unrectified = S.attribute(tiny, images16, "GCAM", target=1, layer="conv2", relu=False)
    assert unrectified.min() < 0 or np.allclose(unrectified, got)


def test_tf1_resize_follows_tensorflow_legacy_formula():
    rng = np.random.default_rng(0)
    src = rng.normal(size=(1, 1, 3, 5)).astype(np.float32)
    out_h, out_w = 7, 11
    expected = np.empty((out_h, out_w))
    for oy in range(out_h):  # tf.image.resize_bilinear(align_corners=False), TF1: in = out * in_size / out_size
        y = oy * 3 / out_h
        y0 = int(np.floor(y)); y1 = min(y0 + 1, 2); fy = y - y0
        for ox in range(out_w):
            xx = ox * 5 / out_w
            x0 = int(np.floor(xx)); x1 = min(x0 + 1, 4); fx = xx - x0
            top = src[0, 0, y0, x0] * (1 - fx) + src[0, 0, y0, x1] * fx
            bottom = src[0, 0, y1, x0] * (1 - fx) + src[0, 0, y1, x1] * fx
            expected[oy, ox] = top * (1 - fy) + bottom * fy
    got = resize_bilinear_tf1(torch.as_tensor(src), (out_h, out_w))[0, 0].numpy()
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-6)
    aligned = F.interpolate(torch.as_tensor(src), size=(out_h, out_w), mode="bilinear", align_corners=False)
    assert not np.allclose(aligned[0, 0].numpy(), expected)  # the two conventions really differ
    one = resize_bilinear_tf1(torch.ones(1, 1, 1, 1) * 2.0, (4, 4))
    assert torch.equal(one, torch.full((1, 1, 4, 4), 2.0))


def test_guided_gradcam_is_the_product_of_the_normalized_gbp_and_gcam_maps(tiny, images16):
    gbp = S.attribute(tiny, images16, "GBP", target=1)
    gcam = S.attribute(tiny, images16, "GCAM", target=1, layer="conv2")
    product = visualize_grayscale(gbp)[0] * visualize_grayscale(gcam)[0]
    raw = S.attribute(tiny, images16, "GGCAM", target=1, layer="conv2")
    np.testing.assert_allclose(raw, product, atol=1e-6)
    maps = S.explain(tiny, images16, "GGCAM", target=1, layer="conv2")
    lo = product.min(axis=(1, 2), keepdims=True)
    hi = product.max(axis=(1, 2), keepdims=True)
    np.testing.assert_allclose(maps, (product - lo) / (hi - lo), atol=1e-6)


def test_guided_backprop_differs_from_the_gradient_only_with_relu_modules(images16):
    x = torch.as_tensor(images16)[:, None]
    target = torch.tensor([1, 1, 1])
    modules = tiny_cnn(seed=2).eval()
    functional = tiny_cnn(seed=2, functional_relu=True).eval()
    grad = S.attribute(modules, images16, "GRAD", target=1)
    gbp = S.attribute(modules, images16, "GBP", target=1)
    assert not np.allclose(gbp, grad, rtol=1e-3, atol=1e-6)
    # Captum's hooks do not see F.relu: the "guided" map is the plain gradient...
    silent = _guided_backprop(functional, x, target)[:, 0].numpy()
    np.testing.assert_allclose(silent, S.attribute(functional, images16, "GRAD", target=1), rtol=1e-5, atol=1e-8)
    # ... which explain refuses
    with pytest.raises(S.SaliencyError, match="functionally"):
        S.explain(functional, images16, "GBP")
    with pytest.raises(S.SaliencyError, match="functionally"):
        S.explain(functional, images16, "GGCAM", layer="conv2")


def test_occlusion_is_the_logit_drop_under_a_black_patch(tiny):
    images = blob_images(1, 16, seed=9)
    raw = S.attribute(tiny, images, "OCC", target=1, window=0.5, stride=0.5)  # four 8x8 patches, no overlap
    x = torch.as_tensor(images)[:, None]
    model = tiny.eval()
    with torch.no_grad():
        full = model(x)[0, 1]
        for r in range(2):
            for c in range(2):
                patched = x.clone()
                patched[..., 8 * r : 8 * r + 8, 8 * c : 8 * c + 8] = 0.0
                drop = float(full - model(patched)[0, 1])
                np.testing.assert_allclose(raw[0, 8 * r : 8 * r + 8, 8 * c : 8 * c + 8], drop, rtol=1e-4, atol=1e-6)


def test_every_method_is_batch_and_chunk_invariant(tiny):
    images = blob_images(3, 16, seed=8)
    settings = {"SG": {"n_samples": 3}, "IG": {"n_steps": 4}, "SIG": {"n_samples": 2, "n_steps": 3},
                "XRAI": {"n_steps": 3}, "GCAM": {"layer": "conv2"}, "GGCAM": {"layer": "conv2"},
                "OCC": {"window": 0.25, "stride": 0.25}}
    builtin = ("GRAD", "SG", "IG", "SIG", "GCAM", "XRAI", "GBP", "GGCAM", "OCC")  # extensions need their own models
    for method in builtin:
        kw = settings.get(method, {})
        whole = S.attribute(tiny, images, method, batch_size=3, **kw)
        pieces = S.attribute(tiny, images, method, batch_size=2, internal_batch_size=1, **kw)
        np.testing.assert_allclose(whole, pieces, rtol=1e-4, atol=1e-7, err_msg=method)
