"""Registry, METHODS, explain's argument checking and extension registration."""

from __future__ import annotations

import ast
from pathlib import Path

import numpy as np
import pytest
import torch

import helpers.saliency as S
from helpers.saliency import registry
from helpers.saliency.registry import register, unregister

PAPER = ("GRAD", "SG", "IG", "SIG", "GCAM", "XRAI", "GBP", "GGCAM")


def test_methods_start_with_the_paper_methods_in_order():
    assert tuple(S.METHODS)[:8] == PAPER
    assert S.methods()[:8] == PAPER
    assert "OCC" in S.METHODS
    assert ", ".join(S.METHODS).startswith("GRAD, SG, IG")


def test_registry_module_imports_no_method_implementation():
    tree = ast.parse(Path(registry.__file__).read_text())
    imported = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module:
            imported.add(node.module)
        elif isinstance(node, ast.Import):
            imported.update(a.name for a in node.names)
    helpers_imports = {m for m in imported if m.startswith("helpers")}
    # helpers.config (torch-free) for the ConfigError of check_method_settings; no method implementation.
    assert helpers_imports == {"helpers._cache", "helpers.config", "helpers.saliency._errors"}


@pytest.fixture
def half_method():
    """An extension method registered from outside, removed afterwards."""

    def half(model, images, *, target, scale=0.5):
        return np.full((len(images), *images.shape[-2:]), scale, dtype=np.float32)

    spec = register(
        "TEST_HALF", half, defaults={"scale": 0.5}, postprocess="none", description="constant", reference="test"
    )
    yield spec
    unregister("TEST_HALF")


def test_registration_from_outside_is_live_in_methods_and_explain(half_method, tiny, images16):
    assert "TEST_HALF" in S.METHODS and S.METHODS[-1] == "TEST_HALF"
    assert half_method.resolve({"scale": 0.25}) == {"scale": 0.25}
    with pytest.warns(S.ConstantMapWarning):
        maps = S.explain(tiny, images16, "TEST_HALF", scale=0.25)
    np.testing.assert_allclose(maps, 0.25)  # "none" keeps values that already lie in [0, 1]
    with pytest.raises(S.SaliencyError, match=r"in \[0, 1\]"):
        S.explain(tiny, images16, "TEST_HALF", scale=3.0)


def test_register_refuses_bad_registrations(half_method):
    def fn(model, images, *, target, k=1):
        return images

    with pytest.raises(S.RegistryError, match="already registered"):
        register("TEST_HALF", fn, defaults={"k": 1}, description="", reference="")
    with pytest.raises(S.RegistryError, match="already registered"):
        register("GRAD", fn, defaults={"k": 1}, description="", reference="")
    with pytest.raises(S.RegistryError, match="reserved"):
        register("TEST_X", fn, defaults={"batch_size": 1}, description="", reference="")
    with pytest.raises(S.RegistryError, match="postprocess"):
        register("TEST_X", fn, defaults={"k": 1}, postprocess="sqrt", description="", reference="")
    with pytest.raises(S.RegistryError, match="does not accept"):
        register("TEST_X", fn, defaults={"k": 1, "other": 2}, description="", reference="")
    with pytest.raises(S.RegistryError, match="plain values"):
        register("TEST_X", fn, defaults={"k": object()}, description="", reference="")
    with pytest.raises(S.RegistryError, match="name"):
        register("TEST X", fn, defaults={"k": 1}, description="", reference="")
    assert "TEST_X" not in S.METHODS


def test_unknown_method_and_setting_errors_list_valid_names(tiny, images16):
    with pytest.raises(S.UnknownMethodError, match="valid methods: GRAD, SG, IG") as err:
        S.explain(tiny, images16, "SmoothGrad")
    assert isinstance(err.value, ValueError)
    with pytest.raises(S.UnknownSettingError, match="n_samples, noise_level, squared, seed"):
        S.explain(tiny, images16, "SG", n_sample=3)
    with pytest.raises(S.UnknownSettingError, match="takes no settings"):
        S.explain(tiny, images16, "GRAD", n_samples=3)
    with pytest.raises(S.UnknownMethodError):
        S.method_defaults("sg")


def test_bad_setting_values_raise(tiny, images16):
    with pytest.raises(S.SaliencyError, match="n_samples"):
        S.explain(tiny, images16, "SG", n_samples=0)
    with pytest.raises(S.SaliencyError, match="rule"):
        S.explain(tiny, images16, "IG", rule="simpson")
    with pytest.raises(S.SaliencyError, match="baseline"):
        S.explain(tiny, images16, "IG", baseline=2.0)
    with pytest.raises(S.SaliencyError, match="upsample"):
        S.explain(tiny, images16, "GCAM", layer="conv2", upsample="nearest")
    with pytest.raises(S.SaliencyError, match="no submodule 'conv9'"):
        S.explain(tiny, images16, "GCAM", layer="conv9")
    with pytest.raises(S.SaliencyError, match="gradcam_layer"):
        S.explain(tiny, images16, "GCAM")  # a model without .architecture needs layer=


def test_method_defaults_are_copies_and_describe_lists_every_method():
    d = S.method_defaults("SG")
    assert d == {"n_samples": 25, "noise_level": 0.15, "squared": True, "seed": 0}
    d["n_samples"] = 1
    assert S.method_defaults("SG")["n_samples"] == 25
    assert S.method_defaults("IG") == {"n_steps": 10, "baseline": 0.0, "rule": "paper"}
    assert S.method_defaults("XRAI")["n_steps"] == 100
    rows = S.describe()
    assert [r["method"] for r in rows] == list(S.METHODS)
    assert {r["postprocess"] for r in rows if r["method"] in ("XRAI", "GGCAM")} == {"minmax"}


def test_passes_per_image():
    spec = registry.get("SIG")
    assert spec.n_passes(spec.resolve({})) == 250
    assert registry.get("XRAI").n_passes(registry.get("XRAI").resolve({})) == 200
    assert registry.get("GGCAM").n_passes({}) == 2
    assert registry.get("OCC").n_passes({}) is None


def test_bad_images_raise(tiny):
    with pytest.raises(S.SaliencyError, match=r"\[0, 1\]"):
        S.explain(tiny, np.full((1, 16, 16), 2.0, dtype=np.float32), "GRAD")
    with pytest.raises(S.SaliencyError, match="shape"):
        S.explain(tiny, np.zeros((16, 16), dtype=np.float32), "GRAD")
    with pytest.raises(S.SaliencyError, match="NaN"):
        S.explain(tiny, np.full((1, 16, 16), np.nan, dtype=np.float32), "GRAD")
    with pytest.raises(S.SaliencyError, match="batch_size"):
        S.explain(tiny, torch.rand(1, 16, 16), "GRAD", batch_size=0)
