"""Toy faces: a procedural dataset of cartoon faces with per-pixel part labels and landmarks (issue 8, part 1).

jaxgan trains its bundled demo StyleGAN2 on these faces, and measures its editing algorithms against the ground
truth they come with: DragGAN moves landmarks, EditGAN segments and edits parts, and the renderer can re-draw the
same face with one attribute changed (`render_params`).

What is drawn, back to front: a background with a vertical colour gradient; shoulders (clothes); long hair behind
the head; the neck; two ears; the face (an ellipse whose jaw narrows by `face_taper`); short hair / the top of long
hair as a cap over the forehead (a hairline that drops towards the temples and may be swept to one side); two
eyebrows (thick curves with a height, tilt and arch); two eyes (white ellipses with a dark pupil that follows the
gaze and never leaves the eye, or, when closed, a dark lid line and no white or pupil); a button nose; the mouth
(lips along a smiling or frowning curve; an open mouth shows a dark interior between the lips, sometimes with the
upper teeth). A similarity transform (pose: shift, scale, in-plane rotation) moves all parts together; the
background gradient stays vertical in the image.

Shapes are signed distances evaluated at pixel centres, vectorised over the batch and the pixel grid (each part only
inside the batch's bounding window of that part). A part covers a pixel by clip(0.5 - d, 0, 1), d the signed distance
in pixels: the box-filter coverage of a straight edge along a pixel axis, a close approximation to it for curved or
slanted edges (analytic anti-aliasing instead of supersampling; 16x cheaper than 4x4 supersampling). Strokes
(eyebrows, lid lines, lips) are never drawn thinner than one pixel, nor the nose smaller than 0.75 px in radius, so
that they keep their label at 32 px. Parts are
composited with these coverages as alpha, back to front. The label of a pixel is the class with the largest
visible coverage there (a part's coverage times what the parts in front of it leave uncovered, summed over the
parts of one class; on a tie the part in front wins), so labels and image agree to the pixel.

Coordinates: a face frame (u right, v down, the unit half the image side before the pose scale) is mapped to image
coordinates x, y in [-1, 1] (x along columns, y along rows) by [x, y] = scale * R(angle) [u, v] + shift. Landmarks
are (row, col) in pixels with pixel centres at integer coordinates: col = (x + 1) * resolution / 2 - 0.5. "left" and
"right" are image left and right (smaller and larger column before rotation).

Every face is a function of its seed alone: the seed seeds its own numpy Generator (PCG64), which draws a fixed
number of uniforms that `sample_params` maps to the attributes; no global random state. Faces depend on this
module's version (a change of the attribute ranges changes the face of a seed).
"""

import dataclasses
from typing import Callable, Iterator

import numpy as np

CLASS_NAMES = ("background", "skin", "neck", "clothes", "hair", "ear", "eyebrow", "eye_white", "pupil", "eyelid",
               "nose", "lips", "mouth", "teeth")
CLASS_IDS = {name: i for i, name in enumerate(CLASS_NAMES)}
LANDMARK_NAMES = ("left_eye", "right_eye", "left_pupil", "right_pupil", "left_brow", "right_brow", "nose_tip",
                  "mouth_left", "mouth_right", "mouth_center", "chin")
LANDMARK_IDS = {name: i for i, name in enumerate(LANDMARK_NAMES)}
RESOLUTIONS = (32, 64, 128)
HAIR_STYLES = ("none", "short", "long")

# The attributes: name -> trailing shape after the batch axis, and dtype. Lengths are face-frame units (half the
# image side at pose scale 1); vertical positions are relative to the face centre, which sits at v = FACE_CENTER_V.
PARAM_SPECS = {
    "pose_shift": ((2,), np.float32),      # (x, y) translation in image half-sides
    "pose_scale": ((), np.float32),
    "pose_angle": ((), np.float32),        # in-plane rotation, radians (positive: clockwise on screen)
    "bg_top_rgb": ((3,), np.float32),      # colours are 0..255
    "bg_bottom_rgb": ((3,), np.float32),
    "face_radii": ((2,), np.float32),      # (half-width, half-height) of the face ellipse
    "face_taper": ((), np.float32),        # how much narrower the face is towards the chin (0: an ellipse)
    "skin_rgb": ((3,), np.float32),
    "neck_width": ((), np.float32),        # half-width
    "neck_length": ((), np.float32),       # chin to shoulder line
    "shoulder_width": ((), np.float32),    # half-width of the shoulders' ellipse
    "clothes_rgb": ((3,), np.float32),
    "ear_radii": ((2,), np.float32),
    "ear_lift": ((), np.float32),          # ear centre above the eye line
    "hair_style": ((), np.int32),          # index into HAIR_STYLES
    "hair_rgb": ((3,), np.float32),
    "hair_thickness": ((), np.float32),    # how far the hair stands off the skull
    "hairline": ((), np.float32),          # hairline height at the face's centre line
    "hair_side_drop": ((), np.float32),    # the hairline drops by this * u^2 towards the temples
    "hair_sweep": ((), np.float32),        # ... and by this * u (a side-swept fringe)
    "hair_length": ((), np.float32),       # long hair: how far below the face centre it reaches
    "eye_y": ((), np.float32),
    "eye_spacing": ((), np.float32),       # half the distance between the eye centres
    "eye_radii": ((2,), np.float32),       # of the eye white
    "eye_open": ((2,), np.bool_),          # (left, right)
    "pupil_radius": ((), np.float32),
    "pupil_rgb": ((3,), np.float32),
    "gaze": ((2,), np.float32),            # pupil offset as a fraction of its largest in-eye offset, (u, v)
    "lid_arch": ((), np.float32),          # closed eye: the lid line's ends sit this much above its middle
    "brow_gap": ((), np.float32),          # between the eye's top and the brow's centre line
    "brow_half_width": ((), np.float32),
    "brow_thickness": ((), np.float32),    # half-thickness
    "brow_tilt": ((), np.float32),         # slope; positive lowers the inner ends (a frown)
    "brow_arch": ((), np.float32),         # the brow's middle above its ends
    "brow_rgb": ((3,), np.float32),
    "nose_y": ((), np.float32),
    "nose_radii": ((2,), np.float32),
    "mouth_y": ((), np.float32),           # height of the mouth corners
    "mouth_half_width": ((), np.float32),  # corner to centre
    "smile": ((), np.float32),             # how far the mouth's middle sits below its corners (negative: a frown)
    "mouth_open": ((), np.bool_),
    "mouth_opening": ((2,), np.float32),   # (upper, lower) opening at the middle when open
    "teeth": ((), np.bool_),               # open mouth shows the upper teeth
    "lip_thickness": ((), np.float32),     # half-thickness of the lip line
    "lip_rgb": ((3,), np.float32),
}

FACE_CENTER_V = -0.06
EYE_WHITE_RGB = np.array([248, 248, 244], np.float32)
LID_LINE_RGB = np.array([50, 36, 36], np.float32)
MOUTH_RGB = np.array([88, 24, 36], np.float32)
TEETH_RGB = np.array([252, 252, 246], np.float32)
LID_HALF_THICKNESS = 0.028
HAIR_TIP_RADIUS = 0.03  # the hair's tips at the temples are rounded to this radius
TEETH_DEPTH = 0.4  # of the upper teeth, as a fraction of the mouth's opening
# Shades of skin for the ears, neck and nose, so that each part stands out from the face.
EAR_SHADE, NECK_SHADE, NOSE_SHADE = 0.9, 0.82, 0.8

SKIN_TONES = np.array([[255, 226, 200], [243, 198, 165], [228, 176, 136], [199, 139, 100], [150, 96, 62],
                       [104, 66, 44]], np.float32)
HAIR_COLOURS = np.array([[34, 28, 28], [78, 50, 32], [132, 86, 48], [226, 188, 112], [168, 74, 36],
                         [196, 196, 200], [60, 96, 200], [206, 86, 168]], np.float32)
HAIR_COLOUR_P = np.array([0.24, 0.22, 0.16, 0.14, 0.1, 0.06, 0.04, 0.04])
PUPIL_COLOURS = np.array([[24, 20, 20], [60, 36, 20], [24, 44, 84], [30, 62, 40]], np.float32)
NUM_DRAWS = 96  # uniforms drawn per seed; sample_params uses a fixed column for each attribute


@dataclasses.dataclass(frozen=True)
class ToyFaces:
    """A batch of rendered faces."""

    images: np.ndarray     # uint8 [N, H, W, 3]
    labels: np.ndarray     # uint8 [N, H, W], indices into CLASS_NAMES
    landmarks: np.ndarray  # float32 [N, K, 2] (row, col) pixels, pixel centres at integers; K = len(LANDMARK_NAMES)
    params: dict           # name -> np.ndarray [N, ...] (PARAM_SPECS), the attributes these were rendered from


# --- sampling ---------------------------------------------------------------------------------------------------

def _checked_seeds(seeds) -> np.ndarray:
    seeds = np.asarray(seeds)
    if seeds.ndim != 1 or not (seeds.dtype.kind in "iu" or seeds.size == 0):
        raise ValueError(f"seeds must be a 1-D array of integers, not {seeds.dtype} with shape {seeds.shape}")
    if seeds.dtype.kind == "i" and (seeds < 0).any():
        raise ValueError("seeds must be non-negative")
    return seeds


def _draws(seeds: np.ndarray) -> np.ndarray:
    """float64 [N, NUM_DRAWS] uniforms in [0, 1), row i from a PCG64 generator seeded with seeds[i] alone."""
    out = np.empty((len(seeds), NUM_DRAWS))
    for i, seed in enumerate(seeds):
        out[i] = np.random.Generator(np.random.PCG64(int(seed))).random(NUM_DRAWS)
    return out


class _Columns:
    """Hands out the draw columns in a fixed order, so that each attribute always reads the same ones."""

    def __init__(self, draws):
        self.draws, self.next = draws, 0

    def take(self, k: int = 1) -> np.ndarray:
        cols = self.draws[:, self.next:self.next + k]
        self.next += k
        assert self.next <= NUM_DRAWS, "raise NUM_DRAWS (which changes every seed's face)"
        return cols if k > 1 else cols[:, 0]

    def uniform(self, low, high, k: int = 1) -> np.ndarray:
        return low + (high - low) * self.take(k)

    def choice(self, probs) -> np.ndarray:
        return np.searchsorted(np.cumsum(probs)[:-1], self.take(), side="right")


def _hsv_to_rgb(h, s, v) -> np.ndarray:
    """[N] hue (turns), saturation, value in [0, 1] -> [N, 3] in 0..255."""
    k = (np.array([5.0, 3.0, 1.0]) + h[:, None] * 6) % 6
    return 255 * (v[:, None] - v[:, None] * s[:, None] * np.clip(np.minimum(k, 4 - k), 0, 1))


def _palette_colour(palette, index, jitter) -> np.ndarray:
    return np.clip(palette[index] + jitter, 0, 255)


def sample_params(seeds) -> dict:
    """The attributes of the faces of `seeds` (non-negative integers [N]): name -> [N, ...] (PARAM_SPECS)."""
    seeds = _checked_seeds(seeds)
    c = _Columns(_draws(seeds))
    p = {}
    p["pose_shift"] = c.uniform(-0.07, 0.07, 2)
    p["pose_scale"] = c.uniform(0.95, 1.12)
    p["pose_angle"] = c.uniform(-0.2, 0.2)

    hue, sat, val = c.take(), c.uniform(0.15, 0.6), c.uniform(0.55, 0.95)
    p["bg_top_rgb"] = _hsv_to_rgb(hue, sat, val)
    p["bg_bottom_rgb"] = _hsv_to_rgb((hue + c.uniform(-0.08, 0.08)) % 1, sat * c.uniform(0.7, 1.3).clip(0, 1),
                                     val * c.uniform(0.6, 1.0))

    p["face_radii"] = np.stack([c.uniform(0.35, 0.43), c.uniform(0.46, 0.53)], axis=1)
    p["face_taper"] = c.uniform(0.0, 0.3)
    tone = c.uniform(0, len(SKIN_TONES) - 1 - 1e-6)
    lower = np.floor(tone).astype(int)
    frac = (tone - lower)[:, None]
    p["skin_rgb"] = np.clip(SKIN_TONES[lower] * (1 - frac) + SKIN_TONES[lower + 1] * frac
                            + c.uniform(-6, 6, 3), 0, 255)

    p["neck_width"] = c.uniform(0.12, 0.18)
    p["neck_length"] = c.uniform(0.12, 0.22)
    p["shoulder_width"] = c.uniform(0.7, 0.95)
    p["clothes_rgb"] = _hsv_to_rgb(c.take(), c.uniform(0.3, 0.85), c.uniform(0.3, 0.9))

    p["ear_radii"] = np.stack([c.uniform(0.05, 0.075), c.uniform(0.085, 0.125)], axis=1)
    p["ear_lift"] = c.uniform(-0.04, 0.04)

    p["hair_style"] = c.choice([0.15, 0.45, 0.4])
    hair = c.choice(HAIR_COLOUR_P)
    p["hair_rgb"] = _palette_colour(HAIR_COLOURS, hair, c.uniform(-12, 12, 3))
    p["hair_thickness"] = c.uniform(0.05, 0.12)
    p["hairline"] = c.uniform(-0.44, -0.3)
    p["hair_side_drop"] = c.uniform(0.3, 1.4)
    p["hair_sweep"] = c.uniform(-0.3, 0.3)
    p["hair_length"] = c.uniform(0.3, 0.62)

    p["eye_y"] = c.uniform(-0.1, 0.0)
    p["eye_spacing"] = c.uniform(0.165, 0.2)
    p["eye_radii"] = np.stack([c.uniform(0.085, 0.115), c.uniform(0.07, 0.1)], axis=1)
    both_closed, wink = c.take(), c.take()
    closed = np.stack([both_closed < 0.12, both_closed < 0.12], axis=1)
    closed[:, 0] |= wink < 0.04
    closed[:, 1] |= (wink >= 0.04) & (wink < 0.08)
    p["eye_open"] = ~closed
    # A pupil of at least 0.048 is >= 0.72 px at 32 px (pose scale >= 0.95), enough for the pixel nearest its centre
    # to be mostly pupil (labelled pupil); at most 0.75 of the eye's smaller radius keeps eye white around it.
    p["pupil_radius"] = np.minimum(c.uniform(0.048, 0.065), 0.75 * p["eye_radii"].min(axis=1))
    p["pupil_rgb"] = _palette_colour(PUPIL_COLOURS, c.choice([0.3, 0.35, 0.2, 0.15]), c.uniform(-10, 10, 3))
    p["gaze"] = c.uniform(-1, 1, 2) * np.array([1.0, 0.6])
    p["lid_arch"] = c.uniform(-0.015, 0.02)

    p["brow_gap"] = c.uniform(0.035, 0.08)
    p["brow_half_width"] = c.uniform(0.07, 0.1)
    p["brow_thickness"] = c.uniform(0.02, 0.032)
    p["brow_tilt"] = c.uniform(-0.35, 0.35)
    p["brow_arch"] = c.uniform(-0.005, 0.035)
    bald_brow = _palette_colour(HAIR_COLOURS, c.choice(HAIR_COLOUR_P[:3] / HAIR_COLOUR_P[:3].sum()), 0)
    p["brow_rgb"] = np.where(p["hair_style"][:, None] == 0, bald_brow, p["hair_rgb"]) * c.uniform(0.6, 0.8)[:, None]

    # The parts of the middle of the face never overlap: the nose (|u| <= 0.05) passes between the eyes (inner
    # edges at |u| >= 0.05), its top (>= 0.05) is below the closed eyes' lid lines (<= 0.024), and the mouth's
    # top stays below the nose's bottom.
    p["nose_y"] = c.uniform(0.1, 0.15)
    p["nose_radii"] = np.stack([c.uniform(0.03, 0.05), c.uniform(0.03, 0.05)], axis=1)

    p["mouth_y"] = p["nose_y"] + p["nose_radii"][:, 1] + c.uniform(0.08, 0.11)
    p["mouth_half_width"] = c.uniform(0.09, 0.15)
    p["smile"] = c.uniform(-0.15, 0.4) * p["mouth_half_width"]
    p["mouth_open"] = c.take() < 0.4
    p["mouth_opening"] = np.stack([c.uniform(0.01, 0.03), c.uniform(0.025, 0.06)], axis=1)
    p["teeth"] = c.take() < 0.5
    p["lip_thickness"] = c.uniform(0.02, 0.028)
    lip_mix = c.uniform(0.35, 0.7)[:, None]
    p["lip_rgb"] = p["skin_rgb"] * (1 - lip_mix) + np.array([196, 58, 72]) * lip_mix

    return {name: np.asarray(p[name], dtype).reshape(len(seeds), *shape)
            for name, (shape, dtype) in PARAM_SPECS.items()}


# --- signed distances (negative inside), in face units; x, y are relative to the part's centre ------------------

def _ratio(num, den, fallback):
    return np.divide(num, den, out=np.broadcast_to(fallback, num.shape).astype(np.float32), where=den > 1e-9)


def _ellipse(x, y, a, b):
    """Approximate distance to an axis-aligned ellipse: (k - 1) / |grad k| with k the normalised radius."""
    k0 = np.sqrt((x / a) ** 2 + (y / b) ** 2)
    k1 = np.sqrt((x / (a * a)) ** 2 + (y / (b * b)) ** 2)
    return (k0 - 1) * _ratio(k0, k1, np.minimum(a, b))


def _egg(x, y, a, b, taper):
    """An ellipse whose half-width shrinks linearly below its centre, to (1 - taper) * a at the bottom."""
    below = np.maximum(y, 0) / b
    s = 1 - taper * below
    X, Y = x / (a * s), y / b
    k0 = np.sqrt(X * X + Y * Y)
    gx = X / (a * s)
    gy = Y / b + X * x * taper * (y > 0) / (a * s * s * b)  # d(X)/dy is non-zero below the centre only
    return (k0 - 1) * _ratio(k0, np.sqrt(gx * gx + gy * gy), np.minimum(a, b))


def _lens(x, y, w, slope, bend, upper, lower):
    """Distance to the region between two parabolas through the corners (+-w, +-slope * w).

    The centre line is y = slope * x + bend * (1 - (x/w)^2) (bend > 0: the middle is lower, as in a smile); the
    region reaches `upper` above and `lower` below it at x = 0. With upper = lower = 0 this is the distance to the
    centre line itself (a curved stroke: subtract a half-thickness for round-ended strokes). Between the corners it
    is the vertical distance to the nearer parabola scaled by its slope; past a corner along the centre line's
    direction there, the distance to the corner point.
    """
    rel = 1 - (x / w) ** 2
    centre = slope * x + bend * rel
    dslope = 2 * x / (w * w)  # -d(rel)/dx
    above = (centre - upper * rel - y) / np.sqrt(1 + (slope - (bend - upper) * dslope) ** 2)
    below = (y - centre - lower * rel) / np.sqrt(1 + (slope - (bend + lower) * dslope) ** 2)
    g = np.maximum(above, below)
    # The nearer corner and the centre line's outward direction there: (side, side * m) / |.|, m its slope.
    side = np.where(x < 0, np.float32(-1), np.float32(1))
    cx, cy = side * w, side * slope * w
    m = slope - 2 * side * bend / w
    ahead = (x - cx) * side + (y - cy) * side * m  # > 0: past the corner (unnormalised projection)
    return np.where(ahead > 0, np.sqrt((x - cx) ** 2 + (y - cy) ** 2), g)


def _box(x, y, hx, hy):
    qx, qy = np.abs(x) - hx, np.abs(y) - hy
    return np.sqrt(np.maximum(qx, 0) ** 2 + np.maximum(qy, 0) ** 2) + np.minimum(np.maximum(qx, qy), 0)


def _rounded_intersection(d1, d2, r):
    """The intersection with its corners rounded to radius r: no wedge thinner than 2r (no sub-pixel slivers)."""
    q1, q2 = d1 + r, d2 + r
    return np.sqrt(np.maximum(q1, 0) ** 2 + np.maximum(q2, 0) ** 2) + np.minimum(np.maximum(q1, q2), 0) - r


def _union(*ds):
    return ds[0] if len(ds) == 1 else np.minimum(ds[0], _union(*ds[1:]))


def _off(d, active):
    """Distances of an optional part: +inf (nothing) where `active` [N] is False."""
    return np.where(active[:, None, None], d, np.float32(np.inf))


# --- rendering --------------------------------------------------------------------------------------------------

@dataclasses.dataclass
class _Part:
    cls: int
    centre: np.ndarray   # [N, 2] (u, v): a disc around it of `radius` [N] holds the part (its window)
    radius: np.ndarray
    distance: Callable   # (u, v) [N, h, w] face-frame coordinates -> signed distance [N, h, w]
    colour: np.ndarray   # [N, 3]


def _col(a):
    """[N] -> [N, 1, 1] float32, to broadcast against [N, h, w] grids."""
    return np.asarray(a, np.float32)[:, None, None]


def _parts(p, resolution: int) -> list:
    """The face's parts, back to front, for rendering at `resolution`."""
    n = len(p["pose_scale"])
    f32 = np.float32
    cv = f32(FACE_CENTER_V)
    frx, fry = p["face_radii"][:, 0], p["face_radii"][:, 1]
    skin = p["skin_rgb"]
    half_pixel = 1 / (p["pose_scale"] * resolution)  # in face units

    def stroke(half_thickness):
        """Strokes (brows, lid lines, lips) are never thinner than a pixel, so that some pixels are mostly stroke
        and get its label at every resolution."""
        return np.maximum(half_thickness, half_pixel)

    def at(u, v):
        return np.stack(np.broadcast_arrays(np.asarray(u, f32), np.asarray(v, f32) + np.zeros(n, f32)), axis=1)

    parts = []
    # Shoulders: the top of an ellipse below the neck.
    shoulder_top = cv + fry + p["neck_length"]
    sw, sh = p["shoulder_width"], np.full(n, 0.5, f32)
    parts.append(_Part(CLASS_IDS["clothes"], at(0, shoulder_top + sh), np.maximum(sw, sh),
                       lambda u, v: _ellipse(u, v - _col(shoulder_top + sh), _col(sw), _col(sh)),
                       p["clothes_rgb"]))

    # Hair: the skull's outline grown by the hair's thickness, cut at the hairline; long hair also hangs behind.
    style = p["hair_style"]
    hrx, hry = frx + p["hair_thickness"], fry + p["hair_thickness"]
    hair_cy = cv - 0.3 * p["hair_thickness"]
    length = p["hair_length"]

    def long_hair(u, v):
        head = _ellipse(u, v - _col(hair_cy), _col(hrx), _col(hry))
        mid = (hair_cy + cv + length) / 2
        hang = _box(u, v - _col(mid), _col(hrx), _col((cv + length - hair_cy) / 2))
        return _off(_union(head, hang), style == 2)

    long_reach = np.maximum(np.maximum(hrx, hry), np.hypot(hrx, cv + length - hair_cy))  # the box's far corners
    parts.append(_Part(CLASS_IDS["hair"], at(0, hair_cy), long_reach, long_hair, p["hair_rgb"]))

    neck_top = cv + 0.5 * fry
    neck_h = (shoulder_top + 0.1 - neck_top) / 2
    parts.append(_Part(CLASS_IDS["neck"], at(0, neck_top + neck_h), p["neck_width"] + neck_h,
                       lambda u, v: _box(u, v - _col(neck_top + neck_h), _col(p["neck_width"]), _col(neck_h)),
                       skin * NECK_SHADE))

    # Ears: centred just inside the face outline at about eye height.
    ear_y = p["eye_y"] - p["ear_lift"]
    below = np.maximum(ear_y, 0) / fry
    face_half_width = frx * (1 - p["face_taper"] * below) * np.sqrt(np.clip(1 - (ear_y / fry) ** 2, 0, 1))
    ear_x = face_half_width - 0.25 * p["ear_radii"][:, 0]
    erx, ery = p["ear_radii"][:, 0], p["ear_radii"][:, 1]

    def ears(u, v):
        y = v - _col(cv + ear_y)
        return _union(_ellipse(u + _col(ear_x), y, _col(erx), _col(ery)),
                      _ellipse(u - _col(ear_x), y, _col(erx), _col(ery)))

    parts.append(_Part(CLASS_IDS["ear"], at(0, cv + ear_y), ear_x + np.maximum(erx, ery), ears, skin * EAR_SHADE))

    parts.append(_Part(CLASS_IDS["skin"], at(0, cv), np.maximum(frx, fry),
                       lambda u, v: _egg(u, v - cv, _col(frx), _col(fry), _col(p["face_taper"])), skin))

    drop, sweep, line = p["hair_side_drop"], p["hair_sweep"], cv + p["hairline"]

    def hair_cap(u, v):
        head = _ellipse(u, v - _col(hair_cy), _col(hrx), _col(hry))
        edge = _col(line) + _col(sweep) * u + _col(drop) * u * u
        below_line = (v - edge) / np.sqrt(1 + (_col(sweep) + 2 * _col(drop) * u) ** 2)
        return _off(_rounded_intersection(head, below_line, HAIR_TIP_RADIUS), style > 0)

    parts.append(_Part(CLASS_IDS["hair"], at(0, hair_cy), np.maximum(hrx, hry), hair_cap, p["hair_rgb"]))

    # Eyebrows: strokes above the eyes; the inner ends face the centre line.
    ex, ey = p["eye_spacing"], cv + p["eye_y"]
    erx_, ery_ = p["eye_radii"][:, 0], p["eye_radii"][:, 1]
    bw, tilt, arch = p["brow_half_width"], p["brow_tilt"], p["brow_arch"]
    bt = stroke(p["brow_thickness"])
    by = ey - ery_ - p["brow_gap"] + arch  # the brow's end height; the middle is `arch` higher

    def brows(u, v):
        y = v - _col(by)
        return _union(_lens(u + _col(ex), y, _col(bw), _col(tilt), -_col(arch), 0, 0),
                      _lens(u - _col(ex), y, _col(bw), -_col(tilt), -_col(arch), 0, 0)) - _col(bt)

    brow_reach = bw * (1 + np.abs(tilt)) + bt + np.abs(arch)
    parts.append(_Part(CLASS_IDS["eyebrow"], at(0, by), ex + brow_reach, brows, p["brow_rgb"]))

    lid = stroke(np.full(n, LID_HALF_THICKNESS, f32))
    open_l, open_r = p["eye_open"][:, 0], p["eye_open"][:, 1]
    pupil_offsets = _pupil_offsets(p)

    def eye(u, v, side):
        return _ellipse(u - side * _col(ex), v - _col(ey), _col(erx_), _col(ery_))

    def eye_whites(u, v):
        return _union(_off(eye(u, v, -1), open_l), _off(eye(u, v, 1), open_r))

    def pupils(u, v):
        r = _col(p["pupil_radius"])
        ds = []
        for side, is_open in ((-1, open_l), (1, open_r)):
            x = u - side * _col(ex) - _col(pupil_offsets[:, 0])
            y = v - _col(ey) - _col(pupil_offsets[:, 1])
            ds.append(_off(np.maximum(np.sqrt(x * x + y * y) - r, eye(u, v, side)), is_open))
        return _union(*ds)

    def lids(u, v):
        # The line's middle is at the eye centre (the eye's landmark), its ends `lid_arch` higher.
        y = v - _col(ey - p["lid_arch"])
        ds = [_off(_lens(u - side * _col(ex), y, _col(erx_), 0, _col(p["lid_arch"]), 0, 0), ~is_open)
              for side, is_open in ((-1, open_l), (1, open_r))]
        return _union(*ds) - _col(lid)

    eye_reach = ex + np.maximum(erx_, ery_) + lid + np.abs(p["lid_arch"])
    parts.append(_Part(CLASS_IDS["eye_white"], at(0, ey), eye_reach, eye_whites, np.broadcast_to(EYE_WHITE_RGB, (n, 3))))
    parts.append(_Part(CLASS_IDS["pupil"], at(0, ey), eye_reach, pupils, p["pupil_rgb"]))
    parts.append(_Part(CLASS_IDS["eyelid"], at(0, ey), eye_reach, lids, np.broadcast_to(LID_LINE_RGB, (n, 3))))

    # The nose is never smaller than 0.75 px across its radii: the pixel nearest its centre is then mostly nose.
    ny = cv + p["nose_y"]
    nrx, nry = np.maximum(p["nose_radii"], 1.5 * half_pixel[:, None]).T
    parts.append(_Part(CLASS_IDS["nose"], at(0, ny), np.maximum(nrx, nry),
                       lambda u, v: _ellipse(u, v - _col(ny), _col(nrx), _col(nry)), skin * NOSE_SHADE))

    # Mouth: the lips are the region around the opening grown by the lip thickness (a stroke when closed).
    my, mw, smile = cv + p["mouth_y"], p["mouth_half_width"], p["smile"]
    is_open = p["mouth_open"]
    upper = np.where(is_open, p["mouth_opening"][:, 0], 0)
    lower = np.where(is_open, p["mouth_opening"][:, 1], 0)
    lip = stroke(p["lip_thickness"])

    def opening(u, v):
        return _lens(u, v - _col(my), _col(mw), 0, _col(smile), _col(upper), _col(lower))

    def inside(u, v):
        # The dark interior stops two lip thicknesses short of the corners: the lips close the corners, and the
        # opening's tips (thinner than a pixel) are not drawn.
        return np.maximum(opening(u, v), np.abs(u) - _col(mw - 2 * lip))

    def teeth(u, v):
        y = v - _col(my)
        rel = 1 - (u / _col(mw)) ** 2
        edge = (_col(smile) - _col(upper) + _col(TEETH_DEPTH * (upper + lower))) * rel
        return _off(np.maximum(inside(u, v), y - edge), is_open & p["teeth"])

    mouth_reach = mw + lip + np.abs(smile) + upper + lower
    mouth_at = at(0, my)
    parts.append(_Part(CLASS_IDS["lips"], mouth_at, mouth_reach, lambda u, v: opening(u, v) - _col(lip),
                       p["lip_rgb"]))
    parts.append(_Part(CLASS_IDS["mouth"], mouth_at, mouth_reach, lambda u, v: _off(inside(u, v), is_open),
                       np.broadcast_to(MOUTH_RGB, (n, 3))))
    parts.append(_Part(CLASS_IDS["teeth"], mouth_at, mouth_reach, teeth, np.broadcast_to(TEETH_RGB, (n, 3))))
    return parts


def _pupil_offsets(p) -> np.ndarray:
    """[N, 2] pupil centre minus eye centre: the gaze times the largest offset that keeps the pupil in the eye."""
    room = p["eye_radii"] - p["pupil_radius"][:, None]
    return p["gaze"] * room * 0.85


def _face_landmarks(p) -> np.ndarray:
    """[N, K, 2] landmarks in the face frame, (u, v)."""
    cv = FACE_CENTER_V
    ex, ey = p["eye_spacing"], cv + p["eye_y"]
    zero = np.zeros_like(ex)
    off = _pupil_offsets(p)
    open_l, open_r = p["eye_open"][:, 0], p["eye_open"][:, 1]
    brow_mid = ey - p["eye_radii"][:, 1] - p["brow_gap"]
    my, mw = cv + p["mouth_y"], p["mouth_half_width"]
    upper = np.where(p["mouth_open"], p["mouth_opening"][:, 0], 0)
    lower = np.where(p["mouth_open"], p["mouth_opening"][:, 1], 0)
    points = {
        "left_eye": (-ex, ey), "right_eye": (ex, ey),
        # A closed eye's pupil landmark is the eye centre, on its lid line.
        "left_pupil": (-ex + off[:, 0] * open_l, ey + off[:, 1] * open_l),
        "right_pupil": (ex + off[:, 0] * open_r, ey + off[:, 1] * open_r),
        "left_brow": (-ex, brow_mid), "right_brow": (ex, brow_mid),
        "nose_tip": (zero, cv + p["nose_y"]),
        "mouth_left": (-mw, my), "mouth_right": (mw, my),
        "mouth_center": (zero, my + p["smile"] + (lower - upper) / 2),
        "chin": (zero, cv + p["face_radii"][:, 1]),
    }
    return np.stack([np.stack(points[name], axis=-1) for name in LANDMARK_NAMES], axis=1)


def _to_image(p, uv) -> np.ndarray:
    """Face-frame points [N, ..., 2] (u, v) -> image coordinates [N, ..., 2] (x, y) in [-1, 1]."""
    shape = (-1,) + (1,) * (uv.ndim - 2)
    c, s = np.cos(p["pose_angle"]).reshape(shape), np.sin(p["pose_angle"]).reshape(shape)
    k = p["pose_scale"].reshape(shape)
    u, v = uv[..., 0], uv[..., 1]
    return np.stack([k * (c * u - s * v) + p["pose_shift"][:, 0].reshape(shape),
                     k * (s * u + c * v) + p["pose_shift"][:, 1].reshape(shape)], axis=-1)


def _checked_params(params) -> dict:
    missing = sorted(set(PARAM_SPECS) - set(params))
    unknown = sorted(set(params) - set(PARAM_SPECS))
    if missing or unknown:
        raise ValueError(f"toyfaces params: missing {missing}, unknown {unknown}")
    n = len(params["pose_scale"])
    if n == 0:
        raise ValueError("toyfaces params: no faces (the batch is empty)")
    out = {}
    for name, (shape, dtype) in PARAM_SPECS.items():
        value = np.asarray(params[name])
        if value.shape != (n, *shape):
            raise ValueError(f"toyfaces params: {name} has shape {value.shape}, expected {(n, *shape)}")
        out[name] = value.astype(dtype)  # a copy: later edits of `params` leave the result alone
    return out


def _window(p, part: _Part, res: int):
    """(rows, cols) slices of the batch's window of `part`: the union over the batch of each face's bounding disc
    of it, grown by 1.5 px for the coverage ramp; None when it misses the image."""
    xy = _to_image(p, part.centre[:, None, :])[:, 0]
    reach = (part.radius * p["pose_scale"])[:, None] + 3 / res
    lo = np.floor(((xy - reach + 1) * res / 2 - 0.5).min(axis=0)).astype(int)
    hi = np.ceil(((xy + reach + 1) * res / 2 - 0.5).max(axis=0)).astype(int)
    (c0, r0), (c1, r1) = np.maximum(lo, 0), np.minimum(hi + 1, res)
    if c0 >= c1 or r0 >= r1:
        return None
    return slice(r0, r1), slice(c0, c1)


def render_params(params, resolution: int = 64) -> ToyFaces:
    """Render faces with the given attributes (a `sample_params` dict, possibly edited) at 32, 64 or 128 px."""
    if resolution not in RESOLUTIONS:
        raise ValueError(f"resolution must be one of {RESOLUTIONS}, not {resolution}")
    p = _checked_params(params)
    n, res = len(p["pose_scale"]), resolution
    f32 = np.float32
    centres = (np.arange(res, dtype=f32) + f32(0.5)) * f32(2 / res) - f32(1)  # pixel centres in [-1, 1]
    cos, sin = np.cos(p["pose_angle"]), np.sin(p["pose_angle"])
    inv_scale = 1 / p["pose_scale"]
    px_per_unit = _col(p["pose_scale"] * res / 2)

    parts = _parts(p, res)
    repeated = {cls for cls in {part.cls for part in parts} if sum(q.cls == cls for q in parts) > 1}
    remaining = np.ones((n, res, res), f32)  # what the parts in front leave uncovered, front to back
    rgb = np.zeros((3, n, res, res), f32)  # channels first: each channel's update is one contiguous pass
    best = np.zeros((n, res, res), f32)    # the largest visible coverage of a class so far, and that class
    labels = np.zeros((n, res, res), np.uint8)
    totals = {cls: np.zeros((n, res, res), f32) for cls in repeated}  # classes drawn in more than one part
    for part in reversed(parts):
        window = _window(p, part, res)
        if window is None:
            continue
        rows, cols = window
        dx = centres[None, None, cols] - _col(p["pose_shift"][:, 0])
        dy = centres[None, rows, None] - _col(p["pose_shift"][:, 1])
        u = (_col(cos) * dx + _col(sin) * dy) * _col(inv_scale)
        v = (_col(cos) * dy - _col(sin) * dx) * _col(inv_scale)
        cover = np.clip(f32(0.5) - part.distance(u, v).astype(f32) * px_per_unit, 0, 1)
        window = (slice(None), rows, cols)
        visible = cover * remaining[window]
        remaining[window] -= visible
        for channel in range(3):
            rgb[(channel,) + window] += visible * _col(part.colour[:, channel])
        if part.cls in totals:
            totals[part.cls][window] += visible
            visible = totals[part.cls][window]
        # Strictly larger: on a tie the part in front keeps the pixel. A class's running total only grows, so
        # at the end `labels` holds the class with the largest total.
        wins = visible > best[window]
        best[window] = np.where(wins, visible, best[window])
        labels[window] = np.where(wins, np.uint8(part.cls), labels[window])
    labels[remaining > best] = CLASS_IDS["background"]
    shade = (np.arange(res, dtype=f32) + f32(0.5)) / f32(res)  # the background's gradient, top to bottom
    for channel in range(3):
        top, bottom = _col(p["bg_top_rgb"][:, channel]), _col(p["bg_bottom_rgb"][:, channel])
        rgb[channel] += remaining * (top + (bottom - top) * shade[None, :, None])
    rgb = rgb.transpose(1, 2, 3, 0)

    images = np.clip(np.rint(rgb), 0, 255).astype(np.uint8)
    xy = _to_image(p, _face_landmarks(p))
    landmarks = ((xy[..., ::-1] + 1) * (res / 2) - 0.5).astype(f32)  # (x, y) -> (row, col)
    return ToyFaces(images=images, labels=labels, landmarks=landmarks, params=p)


def render_batch(seeds, resolution: int = 64) -> ToyFaces:
    """Sample and render the faces of `seeds` (non-negative integers [N])."""
    return render_params(sample_params(seeds), resolution)


def batch_seeds(seed: int, index: int, batch_size: int) -> np.ndarray:
    """The face seeds (uint64 [batch_size]) of batch `index` of the stream `seed` (see iterate_batches)."""
    return np.random.SeedSequence([int(seed), int(index)]).generate_state(batch_size, np.uint64)


def iterate_batches(seed: int, batch_size: int, resolution: int, start: int = 0,
                    rows: slice = slice(None)) -> Iterator[ToyFaces]:
    """An endless stream of batches; batch b (counting from 0 at `start`) holds the faces of
    batch_seeds(seed, start + b, batch_size), so a run resumed with start=k continues the same stream. `rows`: only
    these faces of each batch (a process of a multi-process run renders its devices' share)."""
    if seed < 0 or start < 0 or batch_size < 1:
        raise ValueError("seed and start must be non-negative and batch_size positive")
    index = start
    while True:
        yield render_batch(batch_seeds(seed, index, batch_size)[rows], resolution)
        index += 1
