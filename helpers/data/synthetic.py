"""A deterministic generator of synthetic chest radiographs with lung opacities.

Each image is a caricature of a posteroanterior (PA) chest film: body outline
and soft tissue, two lung fields (air, dark), mediastinum with trachea, heart
shadow (bulging towards the *image's right*, which is the patient's left in a
PA film), aortic knob, spine, posterior and anterior ribs, clavicles, both
diaphragm domes (the patient's right dome, on the image's left, higher) and a
gastric bubble under the left dome. Acquisition varies from image to image
(patient position, scale and rotation, exposure window and gamma, detector blur
and noise), and so does the anatomy (body width, inspiration, heart size, rib
spacing).

Positives carry one to three *opacities*: soft, textured, lobulated regions
inside the lung fields that replace part of the air by fluid density, which is
what a lung opacity (consolidation) is on a radiograph. Every opacity has an
exact pixel mask and a tight box.

Geometry is defined analytically in normalized patient coordinates (the image
spans ``[-1, 1]`` in both directions, ``x`` to the right of the image, ``y``
down), so the same image drawn at another size shows the same anatomy and the
same opacity outlines; only the pixel noise fields depend on the size.

Determinism: image ``i`` depends only on ``(seed, i, size)`` and the options,
through independent random streams ``numpy.random.default_rng([seed, i, k])``
(``k`` = anatomy, label, marker, pixel noise, opacities, opacity texture).
Hence the first ``k`` images of a run with ``n > k`` equal a run with ``n = k``,
the anatomy and opacities of image ``i`` do not change when the confounder or
label noise is switched on, and the same image without its opacities (the
exact "healthy" counterfactual) is available.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from scipy.ndimage import gaussian_filter
from scipy.special import expit

from helpers.data._resize import tight_box
from helpers.data._tables import progress_bar
from helpers.data.errors import DataError
from helpers.data.imageset import ImageSet

__all__ = ["GENERATOR_VERSION", "MIN_SIZE", "MAX_SIZE", "MARKER_PLACEMENTS", "MARKER_PRESENCES", "DEFAULT_MARKER_SIZE",
           "SyntheticSample", "generate", "labels_and_markers", "synthetic_id"]

#: Bumped whenever the pixels a given (seed, i, size, options) produce change;
#: part of the cache key of the synthetic dataset.
GENERATOR_VERSION = "1"
MIN_SIZE = 64
MAX_SIZE = 512
MAX_OPACITIES = 3

# Stream numbers of the per-image random generators default_rng([seed, i, k]).
_ANATOMY, _LABEL, _MARKER, _NOISE, _OPACITY, _TEXTURE = range(6)


def synthetic_id(seed: int, index: int) -> str:
    """Identifier of synthetic image ``index`` of seed ``seed`` (also its patient id)."""
    return f"synth-s{seed}-{index:06d}"


@dataclass(frozen=True, eq=False)
class SyntheticSample:
    """What :func:`generate` returns: images and their exact ground truth.

    Attributes
    ----------
    images : numpy.ndarray
        ``float32 (n, size, size)`` in ``[0, 1]``, bright = dense.
    labels : numpy.ndarray
        ``int64 (n,)`` recorded labels (after label noise).
    true_labels : numpy.ndarray
        ``int64 (n,)``: 1 when the image carries opacities.
    masks : numpy.ndarray
        ``bool (n, size, size)``: union of the opacity masks (all ``False``
        for a true negative).
    regions : numpy.ndarray
        ``uint8 (n, size, size)`` bit field: bit ``j`` is set on the pixels of
        opacity ``j`` (opacities may overlap); see :meth:`region_masks`.
    boxes : list of numpy.ndarray
        ``float64 (k, 4)`` tight box ``x, y, width, height`` of each opacity in
        pixels (``x`` = first column, ``width`` = number of columns).
    markers : numpy.ndarray
        ``bool (n,)``: the image carries the confounding lead marker.
    marker_masks : numpy.ndarray
        ``bool (n, size, size)``: the pixels whose centre lies inside the
        marker's "L" (all ``False`` without a marker); exact, as the opacity
        masks are: the marker is drawn from the same two rectangles.
    lungs : numpy.ndarray
        ``bool (n, size, size)``: the lung fields (lung membership >= 1/2),
        which contain every opacity mask.
    ids : list of str
    params : dict
        The arguments of :func:`generate` and :data:`GENERATOR_VERSION`.
    healthy : numpy.ndarray or None
        With ``return_healthy=True``: the same images with the opacities left
        out (identical anatomy, acquisition, marker and noise).
    without_marker : numpy.ndarray or None
        With ``return_without_marker=True``: the same images with the marker
        left out (equal to ``images`` where there is no marker): exactly what
        ``marker_presence="none"`` draws, for a fraction of the cost.
    """

    images: np.ndarray
    labels: np.ndarray
    true_labels: np.ndarray
    masks: np.ndarray
    regions: np.ndarray
    boxes: list
    markers: np.ndarray
    lungs: np.ndarray
    ids: list
    params: dict = field(default_factory=dict)
    healthy: np.ndarray | None = None
    marker_masks: np.ndarray | None = None
    without_marker: np.ndarray | None = None

    def __len__(self) -> int:
        return int(self.images.shape[0])

    def region_masks(self, index: int) -> np.ndarray:
        """``bool (k, size, size)``: the mask of each opacity of image ``index``."""
        k = len(self.boxes[index])
        bits = self.regions[index]
        return np.stack([(bits >> j) & 1 == 1 for j in range(k)]) if k else np.zeros((0, *bits.shape), bool)

    def to_imageset(self):
        """This sample as an :class:`~helpers.data.imageset.ImageSet` (recorded labels)."""
        return ImageSet(
            images=self.images,
            labels=self.labels,
            masks=self.masks,
            boxes=[b.copy() for b in self.boxes],
            ids=list(self.ids),
            patient_ids=list(self.ids),
            source="synthetic",
        )


# ---------------------------------------------------------------------------
# validation


def _check_marker_options(presence, placement, size, contrast) -> None:
    if presence not in MARKER_PRESENCES:
        raise DataError(f"marker_presence must be one of {', '.join(MARKER_PRESENCES)}, got {presence!r}")
    if placement not in MARKER_PLACEMENTS:
        raise DataError(f"marker_placement must be one of {', '.join(MARKER_PLACEMENTS)}, got {placement!r}")
    for name, value, lo, hi in (("marker_size", size, 0.05, 0.6), ("marker_contrast", contrast, 0.05, 1.0)):
        if isinstance(value, bool) or not isinstance(value, (int, float, np.floating, np.integer)) or not (lo <= float(value) <= hi):
            raise DataError(f"{name} must be a number in [{lo}, {hi}], got {value!r}")


def _check_options(n, size, seed, positive_fraction, confounder_strength, label_noise) -> None:
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 0:
        raise DataError(f"n must be a non-negative integer number of images, got {n!r}")
    if isinstance(size, bool) or not isinstance(size, (int, np.integer)) or not (MIN_SIZE <= size <= MAX_SIZE):
        raise DataError(f"size must be an integer between {MIN_SIZE} and {MAX_SIZE} pixels, got {size!r}")
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise DataError(f"seed must be a non-negative integer, got {seed!r}")
    for name, value, lo, hi in (
        ("positive_fraction", positive_fraction, 0.0, 1.0),
        ("confounder_strength", confounder_strength, 0.0, 1.0),
        ("label_noise", label_noise, 0.0, 0.5),
    ):
        if isinstance(value, bool) or not isinstance(value, (int, float, np.floating, np.integer)) or not (lo <= float(value) <= hi):
            raise DataError(f"{name} must be a number in [{lo}, {hi}], got {value!r}")


# ---------------------------------------------------------------------------
# anatomy in patient coordinates


def _draw_anatomy(rng: np.random.Generator) -> dict[str, float]:
    """Per-image anatomy and acquisition parameters (size independent)."""
    u = rng.uniform
    a: dict[str, float] = {}
    # acquisition: patient position on the detector
    a["tx"], a["ty"] = u(-0.05, 0.05), u(-0.05, 0.05)
    a["scale"] = u(0.88, 1.02)
    a["rot"] = math.radians(u(-4.0, 4.0))
    # body habitus and inspiration
    a["body"] = u(0.90, 1.04)
    a["insp"] = u(-0.05, 0.06)  # deeper inspiration: lower domes
    a["apex"] = u(-0.82, -0.74)
    a["dome_r"] = 0.40 + a["insp"] + u(-0.03, 0.03)  # patient's right dome (image left), higher
    a["dome_l"] = a["dome_r"] + u(0.03, 0.08)
    a["dome_h"] = u(0.13, 0.19)
    a["medial"] = u(0.08, 0.11)
    # heart and great vessels (centre right of the image = patient's left)
    a["hx"], a["hy"] = u(0.09, 0.15), a["dome_r"] - u(0.10, 0.16)
    a["ha"], a["hb"] = u(0.33, 0.41), u(0.24, 0.30)
    a["htilt"] = u(-0.45, -0.20)
    a["knob_r"] = u(0.055, 0.075)
    a["knob_y"] = u(-0.32, -0.24)
    # bones
    a["rib_y0"] = u(-0.78, -0.72)
    a["rib_sp"] = u(0.100, 0.118)
    a["rib_curve"] = u(0.65, 0.85)
    a["clav_y"] = u(-0.64, -0.56)
    a["spine_x"] = u(-0.015, 0.015)
    a["vert_phase"] = u(0.0, 1.0)
    # densities (attenuation units before the exposure window)
    a["soft"] = u(0.42, 0.52)
    a["air"] = u(0.25, 0.33)
    a["bone"] = u(0.045, 0.07)
    a["bubble"] = float(rng.random() < 0.7)
    a["bubble_dx"] = u(0.30, 0.45)
    # exposure, detector
    a["lo"] = u(-0.05, 0.04)
    a["hi"] = u(0.70, 0.86)
    a["gamma"] = math.exp(u(math.log(0.8), math.log(1.25)))
    a["blur"] = u(0.003, 0.012)  # detector blur, sigma in normalized units
    a["noise"] = u(0.008, 0.025)
    return a


def _lung_membership(px: np.ndarray, py: np.ndarray, a: dict[str, float], *, edge: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Soft membership (0..1) of each point to the right lung, the left lung and the heart.

    ``px, py`` are patient coordinates (any shape). Each lung is the soft
    intersection (product of sigmoids of signed distances, in normalized
    units) of a medial border, a lateral border widening from the apex, a
    parabolic apex, the diaphragm dome below, and the heart shadow (and, for
    the left lung, the aortic knob) cut out.
    """
    sig = lambda f: expit(f / edge)  # noqa: E731 - tiny local helper
    body = a["body"]
    # heart: tilted ellipse, centre right of the image (patient's left)
    c, s = math.cos(a["htilt"]), math.sin(a["htilt"])
    dx, dy = px - a["hx"], py - a["hy"]
    hu, hv = (c * dx + s * dy) / a["ha"], (-s * dx + c * dy) / a["hb"]
    q = np.sqrt(hu * hu + hv * hv)
    heart_out = (q - 1.0) * min(a["ha"], a["hb"])  # ~ signed distance, positive outside
    heart = sig(-heart_out)
    knob_out = np.hypot(px - (a["medial"] + 0.035), py - a["knob_y"]) - a["knob_r"]
    lungs = []
    for side, dome in ((-1.0, a["dome_r"]), (1.0, a["dome_l"])):
        u = side * px  # distance from the midline towards this lung's lateral side
        t = np.clip((py - a["apex"]) / 0.85, 0.0, 1.0)
        lateral = body * (0.30 + 0.50 * np.sqrt(t)) - u
        medial = u - (a["medial"] + 0.025 * (py - a["apex"]))
        top = py - (a["apex"] + 1.3 * (u - 0.22) ** 2)
        below = dome + a["dome_h"] * ((u - 0.42 * body) / (0.38 * body)) ** 2 - py
        m = sig(lateral) * sig(medial) * sig(top) * sig(below) * sig(heart_out)
        if side > 0:
            m = m * sig(knob_out)
        lungs.append(m)
    return lungs[0], lungs[1], heart


def _lungs_at(points_x: np.ndarray, points_y: np.ndarray, a: dict[str, float]) -> np.ndarray:
    right, left, _ = _lung_membership(points_x, points_y, a, edge=0.012)
    return right + left


def _smooth_noise(rng: np.random.Generator, size: int, sigma_norm: float) -> np.ndarray:
    """White noise low-passed with a Gaussian of ``sigma_norm`` (normalized units), unit std."""
    field_ = gaussian_filter(rng.standard_normal((size, size), dtype=np.float32), sigma=sigma_norm * size / 2.0, mode="reflect")
    return field_ / (field_.std() + 1e-12)


def _band(d: np.ndarray, half: float) -> np.ndarray:
    """Path length through a cylinder of radius ``half`` at distance ``d`` from its axis (0..1)."""
    return np.sqrt(np.clip(1.0 - (d / half) ** 2, 0.0, 1.0))


def _anatomy(px, py, a, *, size, rng_noise) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Attenuation of the healthy chest, the lung air map and the lung membership."""
    edge = 0.012
    sig = lambda f, e=edge: expit(f / e)  # noqa: E731
    # torso, flaring into the shoulders at the top of the film
    body_w = a["body"] * (0.93 + 0.02 * py - 0.06 * py * py + 0.20 * expit((-0.80 - py) / 0.08))
    body_in = np.clip(1.0 - (px / body_w) ** 2, 0.0, 1.0)
    body = body_in**0.3
    right, left, heart = _lung_membership(px, py, a, edge=edge)
    lung = right + left
    # air thickness: thin at the lung edges, full in the middle
    depth = gaussian_filter(lung, sigma=0.07 * size / 2.0, mode="constant")
    lung_air = lung * (0.45 + 0.55 * np.clip(depth / max(depth.max(), 1e-6), 0.0, 1.0))

    att = 0.04 + a["soft"] * body - a["air"] * lung_air
    att = att + 0.03 * heart * body
    # abdomen below the domes: liver/spleen slightly denser than the chest wall
    u_abs = np.abs(px)
    below_domes = sig(py - (np.where(px < 0, a["dome_r"], a["dome_l"]) + a["dome_h"] * ((u_abs - 0.42) / 0.38) ** 2), 0.02)
    att = att + 0.04 * below_domes * body
    # gastric bubble under the left dome (image right)
    if a["bubble"]:
        bx, by = a["bubble_dx"] * a["body"], a["dome_l"] + 0.11
        bub = sig(1.0 - np.hypot((px - bx) / 0.10, (py - by) / 0.05), 0.15)
        att = att - 0.10 * bub * below_domes
    # trachea (air column) down to the carina, slightly deviated
    tx = a["spine_x"] * 0.5
    trachea = sig(0.035 - np.abs(px - tx), 0.008) * sig(-0.24 - py, 0.02)
    att = att - 0.09 * trachea * body
    # hila: vessels at the lung roots
    for side in (-1.0, 1.0):
        att = att + 0.03 * np.exp(-(((px - side * 0.16) / 0.09) ** 2 + ((py + 0.02) / 0.16) ** 2)) * body
    # spine: vertebral bodies with darker disc spaces
    vert = expit((np.cos(2.0 * math.pi * (py / 0.115 + a["vert_phase"])) + 0.35) / 0.25)
    spine = sig(0.075 - np.abs(px - a["spine_x"]), 0.01) * (0.55 + 0.45 * vert)
    # ribs: posterior ribs arch from the spine laterally and then downwards;
    # anterior ribs run down towards the midline (fainter); both sides at once.
    # Rib k's centreline is y = y0(k) + shape(|x|); instead of measuring the
    # distance to every rib, the nearest rib index is found by inverting
    # y0(k) = rib_y0 + sp * (k + 0.045 k^2) (one pass over the pixels).
    v = np.clip(u_abs - 0.05, 0.0, None)
    rel = (py - (-0.30 * v + a["rib_curve"] * v * v) - a["rib_y0"]) / a["rib_sp"]
    k = np.clip(np.rint((np.sqrt(np.clip(1.0 + 0.18 * rel, 0.0, None)) - 1.0) / 0.09), 0, 9)
    post = _band((rel - k - 0.045 * k * k) * a["rib_sp"], 0.026 + 0.0015 * k)
    post = post * sig(u_abs - 0.07, 0.015) * sig(0.93 * body_w - u_abs, 0.03)
    step = 1.5 * a["rib_sp"]
    rel_a = (py - 0.5 * (0.85 - u_abs) - a["rib_y0"] - 0.12) / step
    ka = np.clip(np.rint(rel_a), 0, 4)
    ant = _band((rel_a - ka) * step, 0.032) * sig(u_abs - 0.32, 0.04) * sig(0.88 * body_w - u_abs, 0.03)
    # clavicles: from the sternal notch laterally and slightly up, S-shaped
    w = np.clip((u_abs - 0.06) / 0.66, 0.0, 1.0)
    yclav = a["clav_y"] - 0.15 * w + 0.035 * np.sin(math.pi * w)
    clav = _band(py - yclav, 0.038) * sig(u_abs - 0.06, 0.01) * sig(0.74 - u_abs, 0.02)
    # over the lungs the ribs stand out; over soft tissue the window flattens them
    bone = a["bone"] * (post + 0.35 * ant) * (0.35 + 0.65 * lung) + a["bone"] * 1.4 * clav + 0.07 * spine
    att = att + bone * body
    # lung markings: vessels, stronger near the hila
    hilum = np.exp(-((np.abs(px) - 0.17) ** 2 + (py + 0.05) ** 2) / 0.18)
    markings = 0.018 * _smooth_noise(rng_noise, size, 0.012) + 0.025 * _smooth_noise(rng_noise, size, 0.045)
    att = att + lung_air * markings * (0.5 + hilum)
    return att, lung_air, lung


# ---------------------------------------------------------------------------
# opacities


def _draw_opacities(rng: np.random.Generator, a: dict[str, float]) -> list[dict[str, Any]]:
    """1 to 3 opacity descriptions (centre well inside a lung, size independent)."""
    k = int(rng.integers(1, MAX_OPACITIES + 1))
    out = []
    for _ in range(k):
        side = -1.0 if rng.random() < 0.5 else 1.0
        radius = rng.uniform(0.07, 0.19)
        for _attempt in range(200):
            cx = side * rng.uniform(0.10, 0.85) * a["body"]
            cy = rng.uniform(a["apex"] + 0.05, a["dome_l"] + 0.10)
            off = 0.5 * radius
            probe_x = np.array([cx, cx - off, cx + off, cx, cx])
            probe_y = np.array([cy, cy, cy, cy - off, cy + off])
            if _lungs_at(probe_x, probe_y, a).min() >= 0.9:
                break
        else:  # pragma: no cover - the lung fields always admit a centre
            raise RuntimeError("could not place an opacity inside the lungs")
        n_h = 3
        out.append(
            dict(
                cx=cx,
                cy=cy,
                radius=radius,
                aspect=math.exp(rng.uniform(math.log(0.65), math.log(1.5))),
                angle=rng.uniform(0.0, math.pi),
                harm_amp=rng.uniform(-0.12, 0.12, size=n_h),
                harm_phase=rng.uniform(0.0, 2.0 * math.pi, size=n_h),
                strength=rng.uniform(0.50, 0.95),
                softness=rng.uniform(0.12, 0.30),
            )
        )
    return out


def _opacity_envelope(px: np.ndarray, py: np.ndarray, op: dict[str, Any]) -> tuple[np.ndarray, np.ndarray]:
    """Soft envelope ``g`` (0..1) and lobulated radius ``r_eff`` of one opacity.

    ``r_eff`` is the radius in units of a rotated ellipse whose outline is
    lobulated by harmonics 2..4 of the polar angle; ``g = 1 / (1 + exp((r_eff
    - 1) / softness))`` is exactly 1/2 on the outline ``r_eff = 1``.
    """
    c, s = math.cos(op["angle"]), math.sin(op["angle"])
    dx, dy = px - op["cx"], py - op["cy"]
    ru = (c * dx + s * dy) / (op["radius"] * op["aspect"] ** 0.5)
    rv = (-s * dx + c * dy) / (op["radius"] / op["aspect"] ** 0.5)
    r = np.hypot(ru, rv)
    phi = np.arctan2(rv, ru)
    lobes = 1.0 + sum(amp * np.cos((j + 2) * phi + ph) for j, (amp, ph) in enumerate(zip(op["harm_amp"], op["harm_phase"])))
    r_eff = r / lobes
    g = expit((1.0 - r_eff) / op["softness"])
    return g, r_eff


# ---------------------------------------------------------------------------
# one image


#: Where the confounding marker can be put (see :func:`generate`).
MARKER_PLACEMENTS = ("upper_corner", "upper_left", "upper_right", "lower_corner")
#: When an image carries the marker (see :func:`generate`).
MARKER_PRESENCES = ("confounded", "independent", "all", "none")
#: Height of the default marker in normalized units (the image spans 2).
DEFAULT_MARKER_SIZE = 0.17


def _marker_geometry(rng: np.random.Generator, *, placement: str, size: float) -> tuple[tuple[float, float, float, float], ...]:
    """The two rectangles ``(x_lo, x_hi, y_lo, y_hi)`` of a lead "L" marker (detector coordinates).

    The draws (side, then corner offsets) are the same for every placement and
    size, so the default marker of an image is where it always was and a
    fixed side only overrides the drawn one.
    """
    right = rng.random() < 0.5
    t = rng.random()  # one draw for the horizontal offset, whichever side: rng.uniform(lo, hi) is lo + (hi - lo) * t
    x_right, x_left = 0.60 + (0.76 - 0.60) * t, -0.90 + (-0.74 + 0.90) * t
    x0 = x_right if right else x_left
    y0 = rng.uniform(-0.92, -0.78)
    scale = size / DEFAULT_MARKER_SIZE
    h, bar, foot = size, 0.045 * scale, 0.11 * scale
    if placement == "upper_left":
        right = False
    elif placement == "upper_right":
        right = True
    if placement in ("upper_left", "upper_right"):
        x0 = x_right if right else x_left
    # keep the whole marker inside the image whatever its size
    x0 = min(x0, 0.98 - foot) if right else max(x0, -0.98)
    if placement == "lower_corner":
        y0 = -y0 - h  # mirrored: the same margin from the bottom edge
    y0 = float(np.clip(y0, -0.98, 0.98 - h))
    stem = (x0, x0 + bar, y0, y0 + h)
    base = (x0, x0 + foot, y0 + h - bar, y0 + h)
    return stem, base


def _marker_membership(X: np.ndarray, Y: np.ndarray, rects) -> tuple[np.ndarray, np.ndarray]:
    """Soft membership (sigmoid edges, 0..1) and exact mask (pixel centre inside) of the "L" marker."""
    e = 0.006
    sig = lambda f: expit(f / e)  # noqa: E731
    soft, hard = [], np.zeros(X.shape, bool)
    for x_lo, x_hi, y_lo, y_hi in rects:
        soft.append((sig(X - x_lo) * sig(x_hi - X)) * (sig(Y - y_lo) * sig(y_hi - Y)))
        hard |= (X >= x_lo) & (X <= x_hi) & (Y >= y_lo) & (Y <= y_hi)
    return np.maximum(*soft), hard


def _marker_present(rng: np.random.Generator, *, presence: str, confounder_strength: float, true_label: int) -> bool:
    u = rng.random()  # always drawn: the marker's geometry is the same whatever the presence rule
    if presence == "all":
        return True
    if presence == "none":
        return False
    if presence == "independent":
        return bool(u < 0.5)
    if confounder_strength <= 0:
        return False
    return bool(u < 0.5 * (1.0 + confounder_strength * (2 * true_label - 1)))


def _render_one(seed: int, i: int, size: int, positive_fraction: float, confounder_strength: float, label_noise: float,
                return_healthy: bool, marker_options: dict[str, Any], return_without_marker: bool = False):
    rng_label = np.random.default_rng([seed, i, _LABEL])
    true_label = int(rng_label.random() < positive_fraction)
    flipped = rng_label.random() < label_noise
    label = true_label ^ int(flipped)

    a = _draw_anatomy(np.random.default_rng([seed, i, _ANATOMY]))
    xs = ((np.arange(size) + 0.5) / size * 2.0 - 1.0).astype(np.float32)  # float32: twice as fast
    X, Y = np.meshgrid(xs, xs)  # detector coordinates; X along columns
    # detector -> patient coordinates: undo shift, scale and rotation
    c, s = math.cos(a["rot"]), math.sin(a["rot"])
    dx, dy = (X - a["tx"]) / a["scale"], (Y - a["ty"]) / a["scale"]
    px, py = c * dx + s * dy, -s * dx + c * dy

    rng_noise = np.random.default_rng([seed, i, _NOISE])
    att, lung_air, lung = _anatomy(px, py, a, size=size, rng_noise=rng_noise)

    regions = np.zeros((size, size), np.uint8)
    boxes = np.zeros((0, 4), np.float64)
    opacity = np.zeros_like(att)
    in_lung = lung >= 0.5
    if true_label:
        ops = _draw_opacities(np.random.default_rng([seed, i, _OPACITY]), a)
        rng_tex = np.random.default_rng([seed, i, _TEXTURE])
        texture = np.clip(0.9 + 0.22 * _smooth_noise(rng_tex, size, 0.03), 0.5, 1.2)
        box_list = []
        for j, op in enumerate(ops):
            g, r_eff = _opacity_envelope(px, py, op)
            # fluid fills a fraction `strength` of the local air column
            opacity = np.maximum(opacity, np.minimum(op["strength"] * g * texture, 1.0) * lung_air * a["air"])
            mask = (r_eff <= 1.0) & in_lung
            if not mask.any():  # pragma: no cover - guarded by the placement rule
                raise RuntimeError(f"empty opacity mask (seed={seed}, i={i}, size={size})")
            regions |= mask.astype(np.uint8) << j
            box_list.append(tight_box(mask))
        boxes = np.stack(box_list)

    rng_m = np.random.default_rng([seed, i, _MARKER])
    marker = _marker_present(rng_m, presence=marker_options["presence"], confounder_strength=confounder_strength,
                             true_label=true_label)
    marker_m = None
    marker_mask = np.zeros((size, size), bool)
    if marker:
        rects = _marker_geometry(rng_m, placement=marker_options["placement"], size=marker_options["size"])
        marker_m, marker_mask = _marker_membership(X, Y, rects)
    contrast = marker_options["contrast"]

    sigma_px = a["blur"] * size / 2.0
    noise = rng_noise.standard_normal((size, size), dtype=np.float32) * np.float32(a["noise"])

    def expose(attenuation: np.ndarray, marker_m=marker_m) -> np.ndarray:
        if marker_m is not None:  # lead: far denser than anything in the body
            attenuation = attenuation + (1.3 - attenuation) * (marker_m if contrast == 1.0 else contrast * marker_m)
        img = np.clip((attenuation - a["lo"]) / (a["hi"] - a["lo"]), 0.0, 1.0) ** a["gamma"]
        img = gaussian_filter(img, sigma=sigma_px, mode="nearest") + noise
        return np.clip(img, 0.0, 1.0).astype(np.float32)

    image = expose(att + opacity)
    healthy = expose(att) if return_healthy else None
    unmarked = None
    if return_without_marker:
        unmarked = expose(att + opacity, None) if marker_m is not None else image
    return image, label, true_label, regions, boxes, marker, in_lung, healthy, marker_mask, unmarked


def generate(
    n: int,
    *,
    size: int,
    seed: int,
    positive_fraction: float = 0.5,
    confounder_strength: float = 0.0,
    label_noise: float = 0.0,
    marker_presence: str = "confounded",
    marker_placement: str = "upper_corner",
    marker_size: float = DEFAULT_MARKER_SIZE,
    marker_contrast: float = 1.0,
    return_healthy: bool = False,
    return_without_marker: bool = False,
    start: int = 0,
    progress: bool | None = None,
) -> SyntheticSample:
    """Draw ``n`` synthetic chest radiographs with exact opacity ground truth.

    Parameters
    ----------
    n : int
        Number of images (any non-negative count).
    size : int
        Square image size in pixels, ``64 <= size <= 512``.
    seed : int
        Non-negative master seed. Image ``i`` depends only on ``seed``, ``i``,
        ``size`` and the options below.
    positive_fraction : float, optional
        Probability that an image carries opacities (an independent draw per
        image, so the realised share fluctuates around it for small ``n``).
    confounder_strength : float, optional
        ``0`` (default): no marker. ``c > 0``: a bright lead "L" marker in an
        upper corner appears with probability ``(1 + c) / 2`` on true
        positives and ``(1 - c) / 2`` on true negatives, so with balanced
        classes the marker is present on half of the images and its
        correlation (phi coefficient) with the label is exactly ``c``;
        ``c = 1`` puts it on every positive and on no negative.
    label_noise : float, optional
        Probability (at most 0.5) that an image's recorded label is flipped.
        Images follow the true label (see ``true_labels``); masks and boxes
        describe the opacities really drawn. The marker follows the true
        label too (it is part of the image, not of the record).
    marker_presence : {"confounded", "independent", "all", "none"}, optional
        Which images carry the marker. ``"confounded"`` (default): the rule
        of ``confounder_strength`` above (no marker when it is 0).
        ``"independent"``: every image with probability 1/2 whatever its
        label (correlation 0; ``confounder_strength`` is ignored).
        ``"all"`` / ``"none"``: every image / no image. One uniform draw per
        image decides in every rule, and the marker's geometry comes after
        it, so an image's marker is in the same place under every rule: the
        same image can be drawn with and without its marker (a de-confounded
        test set of exact counterfactual pairs).
    marker_placement : {"upper_corner", "upper_left", "upper_right", "lower_corner"}, optional
        ``"upper_corner"`` (default): an upper corner, the side drawn per
        image; ``"upper_left"`` / ``"upper_right"``: always that side (the
        drawn offsets kept); ``"lower_corner"``: the upper-corner position
        mirrored to the lower edge.
    marker_size : float, optional
        Height of the "L" in normalized units (the image spans 2), in
        ``[0.05, 0.6]``; default 0.17 (8.5 % of the image side). The stroke
        (0.045) and foot (0.11) scale with it; the marker is kept inside
        the image.
    marker_contrast : float, optional
        Fraction in ``[0.05, 1]`` of the way from the body's attenuation to
        lead's (1.3, far denser than bone); default 1 (a white marker that
        saturates the exposure window). Lower values give a faint marker.
    return_healthy : bool, optional
        Also return every image without its opacities (``healthy``).
    return_without_marker : bool, optional
        Also return every image without its marker (``without_marker``);
        with ``marker_presence="all"`` one call draws both versions of every
        image (the anatomy is computed once).
    start : int, optional
        Index of the first image: ``generate(n, start=k, ...)`` returns images
        ``k .. k + n - 1`` (to produce a large dataset chunk by chunk).
    progress : bool or None, optional
        Show a tqdm progress bar (``None``: only on a terminal).

    Returns
    -------
    SyntheticSample

    Raises
    ------
    DataError
        For an option outside its range.

    Notes
    -----
    Ground truth. Each opacity has a soft envelope ``g`` (a sigmoid of the
    radius of a lobulated ellipse) multiplied by a filtered-noise texture and
    by the local lung air, so it is brightest where the lung is thickest and
    vanishes outside the lungs. Its mask is the set of pixels where ``g >=
    1/2`` (the lobulated outline) *and* the lung membership is at least 1/2
    (clipped to the lung fields); the texture does not enter the mask, which
    is what an annotator outlining the opacity would draw. The box is the
    tight box of that mask.

    Examples
    --------
    >>> s = generate(4, size=64, seed=0)
    >>> s.images.shape, s.images.dtype
    ((4, 64, 64), dtype('float32'))
    """
    _check_options(n, size, seed, positive_fraction, confounder_strength, label_noise)
    _check_marker_options(marker_presence, marker_placement, marker_size, marker_contrast)
    marker_options = dict(presence=marker_presence, placement=marker_placement, size=float(marker_size),
                          contrast=float(marker_contrast))
    if isinstance(start, bool) or not isinstance(start, (int, np.integer)) or start < 0:
        raise DataError(f"start must be a non-negative integer image index, got {start!r}")
    n, size, seed = int(n), int(size), int(seed)
    images = np.zeros((n, size, size), np.float32)
    regions = np.zeros((n, size, size), np.uint8)
    healthy = np.zeros((n, size, size), np.float32) if return_healthy else None
    without = np.zeros((n, size, size), np.float32) if return_without_marker else None
    labels = np.zeros(n, np.int64)
    true_labels = np.zeros(n, np.int64)
    markers = np.zeros(n, bool)
    lungs = np.zeros((n, size, size), bool)
    marker_masks = np.zeros((n, size, size), bool)
    boxes: list[np.ndarray] = []
    for i in progress_bar(range(n), desc="synthesizing", progress=progress):
        img, lab, true, reg, bx, mk, lungs[i], hl, marker_masks[i], um = _render_one(
            seed, int(start) + i, size, float(positive_fraction), float(confounder_strength), float(label_noise), return_healthy,
            marker_options, return_without_marker,
        )
        if without is not None:
            without[i] = um
        images[i], labels[i], true_labels[i], regions[i], markers[i] = img, lab, true, reg, mk
        boxes.append(bx)
        if healthy is not None:
            healthy[i] = hl
    params = dict(
        n=n,
        start=int(start),
        size=size,
        seed=seed,
        positive_fraction=float(positive_fraction),
        confounder_strength=float(confounder_strength),
        label_noise=float(label_noise),
        generator_version=GENERATOR_VERSION,
    )
    if marker_options != dict(presence="confounded", placement="upper_corner", size=DEFAULT_MARKER_SIZE, contrast=1.0):
        params.update({f"marker_{k}": v for k, v in marker_options.items()})
    return SyntheticSample(
        images=images,
        labels=labels,
        true_labels=true_labels,
        masks=regions != 0,
        regions=regions,
        boxes=boxes,
        markers=markers,
        lungs=lungs,
        ids=[synthetic_id(seed, int(start) + i) for i in range(n)],
        params=params,
        healthy=healthy,
        marker_masks=marker_masks,
        without_marker=without,
    )


def labels_and_markers(
    n: int,
    *,
    seed: int,
    positive_fraction: float = 0.5,
    confounder_strength: float = 0.0,
    label_noise: float = 0.0,
    marker_presence: str = "confounded",
    start: int = 0,
) -> dict[str, np.ndarray]:
    """The labels and marker presence :func:`generate` would give, without drawing a pixel.

    Every image's label and marker are decided by their own random streams
    before anything is rendered, so they can be read off cheaply. With the
    images rendered once with ``marker_presence="all"`` and once with
    ``"none"``, picking image ``i`` from the first when ``markers[i]`` gives
    exactly the images of ``generate(..., marker_presence=marker_presence)``
    under any correlation (the anatomy, opacities and noise do not depend on
    the marker): how :mod:`helpers.shortcuts` builds several confounded
    datasets for the cost of two renderings.

    Parameters
    ----------
    n, seed, positive_fraction, confounder_strength, label_noise, marker_presence, start
        As in :func:`generate`.

    Returns
    -------
    dict
        ``labels`` (recorded, ``int64 (n,)``), ``true_labels`` (``int64 (n,)``)
        and ``markers`` (``bool (n,)``).

    Examples
    --------
    >>> d = labels_and_markers(6, seed=0, confounder_strength=1.0)
    >>> bool((d["markers"] == (d["true_labels"] == 1)).all())
    True
    """
    _check_options(n, MIN_SIZE, seed, positive_fraction, confounder_strength, label_noise)
    _check_marker_options(marker_presence, "upper_corner", DEFAULT_MARKER_SIZE, 1.0)
    out = {k: np.zeros(int(n), dtype) for k, dtype in (("labels", np.int64), ("true_labels", np.int64), ("markers", bool))}
    for k in range(int(n)):
        i = int(start) + k
        rng_label = np.random.default_rng([seed, i, _LABEL])
        true_label = int(rng_label.random() < positive_fraction)
        flipped = rng_label.random() < label_noise
        out["true_labels"][k], out["labels"][k] = true_label, true_label ^ int(flipped)
        out["markers"][k] = _marker_present(np.random.default_rng([seed, i, _MARKER]), presence=marker_presence,
                                            confounder_strength=float(confounder_strength), true_label=true_label)
    return out
