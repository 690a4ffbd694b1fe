"""DragGAN point dragging as a pure, batchable step: state in, state out.

Follows the official `Renderer._render_drag_impl` in DragGAN's `viz/renderer.py` (XingangPan/DragGAN@336f120;
the line numbers below are in that file), step for step:

1. assemble ws: the optimised rows 0..5 (w+; or one w repeated six times) and rows 6.. held at w0 (lines 297-300);
2. synthesise with constant noise and resize feature map `feature_idx` bilinearly to the image size (lines 310-319):
   StyleGAN2's block outputs; StyleGAN3's layer outputs, margins included (`G.config.feature_shapes`; the renderer's
   `init_network` sets a StyleGAN3 input transform to the identity, which `generators.with_user_transform` does).
   The resized map is only read (at the handles, in the search windows and patches, and by the mask term), and the
   resize is linear, so it is read through its taps where it is needed (`resize.resize_bilinear_at`; the mask term
   a band of rows at a time) and neither it nor its gradient is ever formed at the image size. Only the blocks up
   to the feature are differentiated (`generators.synthesis_until`); the image's later blocks run after the
   gradient (`synthesis_after`), without a backward pass and without adding to its peak memory;
3. on the first step after the points were (re)set, keep that feature map (F0) and the handle features (lines 320-326);
4. track every handle by the nearest reference feature (L2, first minimum, row-major) in its clipped
   (2*r2+1)^2 window (lines 329-341);
5. motion supervision on the shifted-disk patch of each handle more than 1 px from its target, a sum over handles
   of per-handle means (lines 315-318, 346-360); the mask term lambda * mean|F*m - F0*m| (lines 362-367); the latent
   term (line 369);
6. the stop flag (every handle within max(2, 2h/512) px); Adam steps only when not stopping (lines 347-351, 370-373).

Everything data-dependent is data, so one compiled step serves any latents, points, targets, masks, learning
rates and step budgets: point lists are padded to `max_points` with a validity mask, the patch and search windows
have static sizes with membership masks, and a session that has finished passes through unchanged. The disk
membership test is reproduced bit for bit from host-computed float32 tables (torch's float32 `linspace(0, h, h)`
grid and `distance < r` test, lines 316-318 and 353-354), so XLA's fused
multiply-adds cannot move pixels in or out of the patch.

Sessions run one at a time with `jax.jit(drag_step, static_argnames='cfg')` or many at once with
`make_batched_step`, which vmaps the same step over sessions and shards them over devices.
"""

import dataclasses
import functools
from typing import Any, Callable

import jax
import jax.numpy as jnp
import numpy as np
import optax

from jaxgan import distributed, parallel
from jaxgan.loops import scan_steps
from jaxgan.models import generators
from jaxgan.nn.split import SplitModel
from jaxgan.ops.grid_sample import grid_coordinate, sample_bilinear_zeros_of
from jaxgan.ops.point_tracking import nearest_in_window_of
from jaxgan.ops.resize import resize_bilinear_at, resize_bilinear_rows
from jaxgan.ops.scheduling import computed_after

NUM_OPTIMIZED_WS = 6  # the official code optimises ws[:, :6] and holds the rest at w0 (renderer.py:297-300)
ADAM_B1, ADAM_B2, ADAM_EPS = 0.9, 0.999, 1e-8  # torch.optim.Adam defaults


# ----------------------------------------------------------------------------------------------------------------
# Configuration (static: it fixes the shapes of the compiled step)


OFFICIAL_R1, OFFICIAL_R2, OFFICIAL_FEATURE_IDX = 3.0, 12.0, 5  # renderer.py:319, 331, 354 (`_render_drag_impl`)
RULE_RESOLUTION = 256  # below it, the default radii keep their size in pixels at this resolution
RECOMMENDED_FIELDS = ("r1", "r2", "feature_idx", "lr")  # what a checkpoint may recommend (`recommended_settings`)


def default_tracking(gcfg) -> dict:
    """The default r1, r2 and feature_idx for a generator (any family's config): the official values where they
    work, else the nearest that do, by one rule.

    - feature_idx: the official 5 (StyleGAN2: the 6th synthesis block, 128x128 features on generators of 128 px
      and above; StyleGAN3: the 6th layer's output); where the feature list is shorter (StyleGAN2 below 128 px),
      its last map (full-resolution features).
    - r1, r2 (given, as the official UI, in pixels at 512 px): the official 3 and 12 at 256 px and above, where they
      make 2 and 6 pixel radii at 256 px (round(1.5), round(6)); below 256 px, 3 * 256 / H and 12 * 256 / H, so the
      patch and the search window keep those 2 and 6 pixel radii instead of rounding to 0.
    """
    scale = max(1.0, RULE_RESOLUTION / gcfg.img_resolution)
    return {"r1": OFFICIAL_R1 * scale, "r2": OFFICIAL_R2 * scale,
            "feature_idx": min(OFFICIAL_FEATURE_IDX, len(gcfg.feature_shapes) - 1)}


def recommended_settings(sidecar: dict) -> dict:
    """Drag settings a checkpoint recommends for its generator: its jaxgan.json's "drag" section, else the settings
    of its "demo" drag job (the bundled model's), restricted to RECOMMENDED_FIELDS."""
    own = sidecar.get("drag") or sidecar.get("demo", {}).get("drag", {})
    return {key: own[key] for key in RECOMMENDED_FIELDS if key in own}


@dataclasses.dataclass(frozen=True)
class DragConfig:
    """Static settings of a drag step; `for_generator` fills the shapes from a generator config (StyleGAN2 or
    StyleGAN3) and the tracking settings it is not given from `default_tracking`."""

    img_resolution: int
    img_channels: int
    num_ws: int
    w_dim: int
    feature_resolution: int
    feature_channels: int
    max_points: int = 8
    r1: float = OFFICIAL_R1    # motion-supervision patch radius at 512 px (renderer.py:354)
    r2: float = OFFICIAL_R2    # tracking search radius at 512 px (renderer.py:331)
    feature_idx: int = OFFICIAL_FEATURE_IDX  # supervised and tracked map: 5 = the "6th block" (renderer.py:319)
    noise_mode: str = "const"  # the official default; 'none' also works, random noise would break tracking

    @classmethod
    def for_generator(cls, gcfg, *, r1: float | None = None, r2: float | None = None,
                      feature_idx: int | None = None, **settings) -> "DragConfig":
        """A config for generator `gcfg`; r1, r2, feature_idx None (or absent) take `default_tracking(gcfg)`.
        A value given explicitly is checked, and refused with a ValueError when it cannot work."""
        defaults = default_tracking(gcfg)
        r1 = defaults["r1"] if r1 is None else r1
        r2 = defaults["r2"] if r2 is None else r2
        feature_idx = defaults["feature_idx"] if feature_idx is None else feature_idx
        shapes = gcfg.feature_shapes
        if not 0 <= feature_idx < len(shapes):
            raise ValueError(f"feature_idx {feature_idx} is out of range: this generator has {len(shapes)} feature "
                             f"maps ({', '.join(f'{size}x{size}' for size, _ in shapes)}), so 0..{len(shapes) - 1}")
        if settings.get("noise_mode", cls.noise_mode) not in ("const", "none"):
            raise ValueError("noise_mode must be 'const' or 'none' for dragging")
        size, channels = shapes[feature_idx]
        for name, radius in (("r1", r1), ("r2", r2)):
            if round(radius / 512 * gcfg.img_resolution) < 1:  # i.e. radius <= 256 / resolution
                # The official code would build an empty patch (or window) here; its mean would be NaN.
                raise ValueError(f"{name}={radius:g} (given for 512 px images) rounds to 0 px at "
                                 f"{gcfg.img_resolution} px; use {name} > {256 / gcfg.img_resolution:g}")
        return cls(img_resolution=gcfg.img_resolution, img_channels=gcfg.img_channels, num_ws=gcfg.num_ws,
                   w_dim=gcfg.w_dim, feature_resolution=size, feature_channels=channels, r1=r1, r2=r2,
                   feature_idx=feature_idx, **settings)

    @property
    def patch_radius(self) -> int:
        """round(r1 / 512 * h), Python's round as the official code (1.5 -> 2 at 256 px)."""
        return round(self.r1 / 512 * self.img_resolution)

    @property
    def search_radius(self) -> int:
        return round(self.r2 / 512 * self.img_resolution)

    @property
    def stop_distance(self) -> float:
        """A handle farther than this from its target keeps the drag going (renderer.py:350-351)."""
        return max(2 / 512 * self.img_resolution, 2)

    @property
    def num_optimized(self) -> int:
        return min(NUM_OPTIMIZED_WS, self.num_ws)


# ----------------------------------------------------------------------------------------------------------------
# The motion-supervision patch, exactly as torch builds it (renderer.py:316-318, 353-354)


def torch_linspace_f32(n: int) -> np.ndarray:
    """`torch.linspace(0, n, n)` in float32 on CPU, bit for bit (a single rounding per element, from both ends)."""
    i = np.arange(n)
    step = np.float32(np.float32(n) / np.float32(n - 1))
    return np.where(i < n // 2, i * np.float64(step), n - (n - 1 - i) * np.float64(step)).astype(np.float32)


@functools.cache
def patch_tables(size: int, radius: int) -> tuple[np.ndarray, np.ndarray, np.float32]:
    """Host tables for the disk test `sqrt((X[i]-p)^2 + (X[j]-q)^2) < radius` of the official float32 pipeline.

    Returns (offsets [K], squares [size, K], threshold): for a handle coordinate p, the candidate pixels are
    p + offsets, `squares[p, k] = f32((X[p + offsets[k]] - p) ** 2)` (inf outside the image), and a pixel is in
    the patch iff `squares[py, a] + squares[px, b] < threshold`, a single float32 add, with threshold the
    smallest float32 whose float32 square root is >= radius. X[i] lies in [i, i + 1.004], so offsets
    -(radius+1)..radius+1 hold every member.
    """
    grid = torch_linspace_f32(size)
    offsets = np.arange(-(radius + 1), radius + 2)
    index = np.arange(size)[:, None] + offsets[None, :]
    inside = (index >= 0) & (index < size)
    diff = grid[np.clip(index, 0, size - 1)] - np.arange(size, dtype=np.float32)[:, None]
    squares = np.where(inside, diff * diff, np.float32(np.inf)).astype(np.float32)
    threshold = np.float32(radius * radius)
    while threshold > 0 and np.sqrt(np.nextafter(threshold, np.float32(0))) >= radius:
        threshold = np.nextafter(threshold, np.float32(0))
    return offsets.astype(np.int32), squares, np.float32(threshold)


# ----------------------------------------------------------------------------------------------------------------
# Session state and per-step output (pytrees; a leading axis of sessions when batched)


@dataclasses.dataclass(frozen=True)
class DragState:
    """One drag session. `w` is the optimised latent [num_ws, w_dim] (in w space only row 0 is used, repeated);
    masks and points use image pixels, points as (row, col)."""

    w: Any             # [num_ws, w_dim] float32
    w0: Any            # [num_ws, w_dim] float32, the latent the session started from
    w_space: Any       # bool: one w repeated over the 6 optimised rows instead of w+
    adam: Any          # optax ScaleByAdamState over w; kept across point resets, as the official renderer
    lr: Any            # float32
    lambda_mask: Any   # float32
    reg: Any           # float32 weight of mean|ws - w0|, 0 in the official UIs
    points: Any        # [P, 2] int32 current handle points
    targets: Any       # [P, 2] int32
    valid: Any         # [P] bool, which of the padded points exist
    mask: Any          # [H, W] float32, 1 = keep fixed (the renderer's convention)
    use_mask: Any      # bool: the mask has both 0s and 1s (otherwise the official code ignores it)
    refs_ready: Any    # bool: F0 and the handle features were taken
    feat0: Any         # [h_f, w_f, C] the feature at (re)set time, at block resolution (resized when used)
    feat_refs: Any     # [P, C] handle features f_i
    steps_done: Any    # int32 Adam updates made since the last (re)set
    max_steps: Any     # int32 update budget
    done: Any          # bool: finished (targets reached or budget spent); later steps leave it unchanged
    reached: Any       # bool: finished because every handle reached its target


@dataclasses.dataclass(frozen=True)
class DragStepOutput:
    """What one step observed. `image`, `points` and `ws` belong to the forward pass before the update."""

    image: Any    # [H, W, C] uint8, (img * 127.5 + 128) clamped and truncated as the renderer
    points: Any   # [P, 2] int32 tracked points used for supervision
    losses: Any   # [P + 2] float32: motion term per point (0 when inactive), mean mask term, mean latent term
    loss: Any     # float32 the total that was differentiated
    ws: Any       # [num_ws, w_dim] fed to G
    grad: Any     # [num_ws, w_dim] gradient of the total w.r.t. w
    stop: Any     # bool: the official stop flag
    updated: Any  # bool: Adam stepped
    active: Any   # bool: the session was not finished before this step


for _cls in (DragState, DragStepOutput):
    jax.tree_util.register_dataclass(_cls, data_fields=[f.name for f in dataclasses.fields(_cls)], meta_fields=[])


def _adam():
    return optax.scale_by_adam(b1=ADAM_B1, b2=ADAM_B2, eps=ADAM_EPS)


def _as_points(name: str, points, cfg: DragConfig) -> np.ndarray:
    arr = np.asarray(points)
    if arr.ndim != 2 or arr.shape[1] != 2 or arr.shape[0] == 0:
        raise ValueError(f"{name} must be a non-empty list of (row, col) pairs, got shape {arr.shape}")
    if not np.all(np.equal(np.round(arr), arr)):
        raise ValueError(f"{name} must be integer pixel positions")
    arr = arr.astype(np.int64)
    if arr.shape[0] > cfg.max_points:
        raise ValueError(f"{arr.shape[0]} {name} given, at most {cfg.max_points} (DragConfig.max_points)")
    h = cfg.img_resolution
    outside = [tuple(map(int, p)) for p in arr if not (0 <= p[0] < h and 0 <= p[1] < h)]
    if outside:
        raise ValueError(f"{name} {outside} lie outside the {h}x{h} image (rows and cols are 0..{h - 1})")
    return arr


def _point_arrays(cfg: DragConfig, points, targets):
    points = _as_points("points", points, cfg)
    targets = _as_points("targets", targets, cfg)
    if len(points) != len(targets):
        raise ValueError(f"{len(points)} points but {len(targets)} targets: give one target per point")
    padded_p = np.zeros((cfg.max_points, 2), np.int32)
    padded_t = np.zeros((cfg.max_points, 2), np.int32)
    padded_p[:len(points)] = points
    padded_t[:len(targets)] = targets
    valid = np.arange(cfg.max_points) < len(points)
    return padded_p, padded_t, valid


def _mask_arrays(cfg: DragConfig, mask):
    h = cfg.img_resolution
    if mask is None:
        return np.ones((h, h), np.float32), np.bool_(False)
    mask = np.asarray(mask, np.float32)
    if mask.shape != (h, h):
        raise ValueError(f"the mask is {mask.shape[1]}x{mask.shape[0]}, the image {h}x{h}"
                         if mask.ndim == 2 else f"the mask must be a 2-D [H, W] array, got shape {mask.shape}")
    return mask, np.bool_(mask.min() == 0 and mask.max() == 1)


def new_session(cfg: DragConfig, w0, points, targets, *, mask=None, space: str | None = None, lr: float | None = None,
                lambda_mask: float | None = None, reg: float = 0.0, max_steps: int | None = None) -> DragState:
    """A fresh session from w0 [num_ws, w_dim] (or [1, num_ws, w_dim]).

    mask: [H, W] with 1 where the image must stay fixed, the renderer's convention (the GUI paints the movable
    area 0); None for no mask. A mask that is all 0 or all 1 is ignored, as in the official code. space, lr,
    lambda_mask and max_steps default to `DragJob`'s (the official renderer's) values.
    """
    space = DragJob.space if space is None else space
    lr = DragJob.lr if lr is None else lr
    lambda_mask = DragJob.lambda_mask if lambda_mask is None else lambda_mask
    max_steps = DragJob.steps if max_steps is None else max_steps
    w0 = np.asarray(w0, np.float32)
    if w0.ndim == 3 and w0.shape[0] == 1:
        w0 = w0[0]
    if w0.shape != (cfg.num_ws, cfg.w_dim):
        raise ValueError(f"w0 must have shape ({cfg.num_ws}, {cfg.w_dim}) for this generator, got {w0.shape}")
    if space not in ("w", "w+"):
        raise ValueError(f"space must be 'w' or 'w+', got {space!r}")
    if max_steps < 0:
        raise ValueError("max_steps must be >= 0")
    points, targets, valid = _point_arrays(cfg, points, targets)
    mask, use_mask = _mask_arrays(cfg, mask)
    w = w0.copy()
    if space == "w":
        w[:cfg.num_optimized] = w0[0]  # the official w mode optimises w0[:, 0] repeated (renderer.py:255-258)
    f, c = cfg.feature_resolution, cfg.feature_channels
    return DragState(
        w=w, w0=w0, w_space=np.bool_(space == "w"), adam=_adam().init(jnp.asarray(w)), lr=np.float32(lr),
        lambda_mask=np.float32(lambda_mask), reg=np.float32(reg), points=points, targets=targets, valid=valid,
        mask=mask, use_mask=use_mask, refs_ready=np.bool_(False), feat0=np.zeros((f, f, c), np.float32),
        feat_refs=np.zeros((cfg.max_points, c), np.float32), steps_done=np.int32(0), max_steps=np.int32(max_steps),
        done=np.bool_(False), reached=np.bool_(False))


def reset_points(cfg: DragConfig, state: DragState, points, targets, *, mask=None, keep_mask: bool = True,
                 max_steps: int | None = None) -> DragState:
    """Start a new drag from the session's current latent (the GUI's "Reset point" / new points): the reference
    features are retaken on the next step, Adam's moments carry over as in the official renderer. Same shapes,
    so the compiled step is reused."""
    points, targets, valid = _point_arrays(cfg, points, targets)
    changes = dict(points=points, targets=targets, valid=valid, refs_ready=np.bool_(False), steps_done=np.int32(0),
                   done=np.bool_(False), reached=np.bool_(False))
    if mask is not None or not keep_mask:
        changes["mask"], changes["use_mask"] = _mask_arrays(cfg, mask)
    if max_steps is not None:
        changes["max_steps"] = np.int32(max_steps)
    return dataclasses.replace(state, **changes)


# ----------------------------------------------------------------------------------------------------------------
# The step


def assemble_ws(cfg: DragConfig, w, w0, w_space):
    """ws fed to G: rows 0..5 from w (row 0 repeated in w space), rows 6.. from w0 (renderer.py:297-300)."""
    k = cfg.num_optimized
    head = jnp.where(w_space, jnp.broadcast_to(w[:1], (k, cfg.w_dim)), w[:k])
    return jnp.concatenate([head, w0[k:]], axis=0)


def _l1_mean_terms(a, b):
    """|a - b| whose derivative is sign(a - b), 0 at 0 as torch's l1_loss (jax's abs has derivative 1 at 0)."""
    diff = a - b
    return diff * jax.lax.stop_gradient(jnp.sign(diff))


def _resized(cfg: DragConfig, feat):
    """read(r, c) of the block feature `feat` resized to the image (renderer.py:319) at integer pixel arrays,
    through the resize's taps: the image-size map itself is never formed."""
    size = (cfg.img_resolution, cfg.img_resolution)
    return lambda r, c: resize_bilinear_at(feat, size, r, c)


def track_points(cfg: DragConfig, feat, feat_refs, points, valid, *, implementation: str | None = None):
    """Nearest neighbour (L2 over channels) of each handle's reference feature in its (2r+1)^2 window of the
    resized feature, clipped at the image border; the first minimum in row-major order wins, as torch.min
    (renderer.py:329-341). feat: the block feature [h_f, w_f, C].

    `jaxgan.ops.point_tracking.nearest_in_window_of`; `implementation` (None: the context's or the default choice,
    jaxgan/ops/implementation.py) picks XLA (which forms only the windows) or the Pallas kernel."""
    h = cfg.img_resolution
    tracked = nearest_in_window_of(_resized(cfg, feat), h, h, feat_refs, points, cfg.search_radius,
                                   implementation=implementation)
    return jnp.where(valid[:, None], tracked, points)


def motion_loss(cfg: DragConfig, feat, points, targets, active):
    """Per-point motion-supervision terms [P]: mean over C*N of |sg(F(q)) - F(q + d)| on the shifted disk Ω1 around
    each handle, d the unit step towards the target in output pixels, F the block feature `feat` [h_f, w_f, C]
    resized to the image (read at the patch's pixels and their bilinear taps only); 0 for inactive points
    (renderer.py:346-360)."""
    h = cfg.img_resolution
    offsets, squares, threshold = patch_tables(h, cfg.patch_radius)
    squares = jnp.asarray(squares)
    channels = feat.shape[-1]
    read = _resized(cfg, feat)

    def term(point, target):
        rows = point[0] + offsets
        cols = point[1] + offsets
        member = (squares[point[0]][:, None] + squares[point[1]][None, :]) < threshold
        # direction = [dx, dy] in float32, normalised with the official +1e-7
        dx = (target[1] - point[1]).astype(jnp.float32)
        dy = (target[0] - point[0]).astype(jnp.float32)
        norm = jnp.sqrt(dx * dx + dy * dy) + jnp.float32(1e-7)
        unit_x, unit_y = dx / norm, dy / norm
        fixed = jax.lax.stop_gradient(read(jnp.clip(rows, 0, h - 1)[:, None], jnp.clip(cols, 0, h - 1)[None, :]))
        sample_rows = grid_coordinate(rows.astype(jnp.float32) + unit_y, h)
        sample_cols = grid_coordinate(cols.astype(jnp.float32) + unit_x, h)
        shifted = sample_bilinear_zeros_of(read, h, h, sample_rows[:, None] * jnp.ones_like(sample_cols)[None, :],
                                           jnp.ones_like(sample_rows)[:, None] * sample_cols[None, :])
        count = jnp.sum(member)
        total = jnp.sum(jnp.where(member[..., None], _l1_mean_terms(fixed, shifted), 0))
        # A patch can only be empty if r1 rounds to 0 px, which for_generator refuses (torch's mean: NaN).
        return total / (channels * jnp.maximum(count, 1)).astype(jnp.float32)

    terms = jax.vmap(term)(points, targets)
    return jnp.where(active, terms, 0)


MASK_BAND_ROWS = 8  # image rows of the resized features formed at a time by `mask_term` (16: 17 MB more XLA
# temporaries at 256 px, 1% less time)


def mask_term(cfg: DragConfig, feat, feat0, mask):
    """mean |F * m - F0 * m| over the image-size maps (renderer.py:362-367), F and F0 the block features `feat` and
    `feat0` [h_f, w_f, C] resized to the image, m the mask [H, W]. Formed a band of rows at a time (`lax.map`; each
    band recomputed for the backward, `jax.checkpoint`), so neither the maps nor their gradient are ever stored at
    the image size; the sum of the band sums over the element count."""
    h = cfg.img_resolution
    size, band = (h, h), np.gcd(h, MASK_BAND_ROWS)

    @jax.checkpoint
    def band_sum(start):
        rows = start + jnp.arange(band)
        m = jax.lax.dynamic_slice_in_dim(mask, start, band, axis=0)[..., None]
        return jnp.sum(_l1_mean_terms(resize_bilinear_rows(feat, size, rows) * m,
                                      resize_bilinear_rows(feat0, size, rows) * m))

    sums = jax.lax.map(band_sum, jnp.arange(0, h, band))
    return jnp.sum(sums) / jnp.float32(h * h * feat.shape[-1])


def drag_step(G: SplitModel, state: DragState, cfg: DragConfig) -> tuple[DragState, DragStepOutput]:
    """One call of the official `_render_drag_impl`: forward, (take references), track, supervise, maybe update.

    Pure; jit with `static_argnames='cfg'`. A finished session (`state.done`) is returned unchanged.
    """
    h = cfg.img_resolution
    ws = assemble_ws(cfg, state.w, state.w0, state.w_space)

    def feature_of(w):
        feature, carry = generators.synthesis_until(G, assemble_ws(cfg, w, state.w0, state.w_space)[None],
                                                    cfg.feature_idx, noise_mode=cfg.noise_mode)
        return feature[0], carry

    # Only the blocks up to the feature are differentiated; the rest of the image is rendered after the gradient.
    feat, feat_vjp, carry = jax.vjp(feature_of, state.w, has_aux=True)

    # References: taken on the first step after a (re)set from this very forward pass (renderer.py:320-326). The
    # resized features are read where they are needed (handles, windows, patches, mask bands), never stored whole.
    feat0 = jnp.where(state.refs_ready, state.feat0, jax.lax.stop_gradient(feat))
    start_refs = resize_bilinear_at(feat, (h, h), state.points[:, 0], state.points[:, 1])
    feat_refs = jax.lax.stop_gradient(jnp.where(state.refs_ready, state.feat_refs, start_refs))

    points = track_points(cfg, jax.lax.stop_gradient(feat), feat_refs, state.points, state.valid)

    delta = (state.targets - points).astype(jnp.float32)
    distance = jnp.sqrt(jnp.sum(delta * delta, axis=-1))
    stop = ~jnp.any(state.valid & (distance > cfg.stop_distance))
    moving = state.valid & (distance > 1)

    def feature_loss(f):
        motion = motion_loss(cfg, f, points, state.targets, moving)
        masked = jnp.where(state.use_mask, mask_term(cfg, f, feat0, state.mask), 0)
        return jnp.sum(motion) + state.lambda_mask * masked, (motion, masked)

    def latent_loss(w):
        return jnp.mean(_l1_mean_terms(assemble_ws(cfg, w, state.w0, state.w_space), state.w0))

    (feat_total, (motion, masked)), grad_feat = jax.value_and_grad(feature_loss, has_aux=True)(feat)
    reg_term, grad_reg = jax.value_and_grad(latent_loss)(state.w)
    (grad,) = feat_vjp(grad_feat)
    grad = grad + state.reg * grad_reg
    # The image's later blocks wait for the gradient (`computed_after`): run during the backward pass, as XLA's
    # CPU schedule did, their image-size maps added to its peak (68 of 284 MB at 256 px).
    img = generators.synthesis_after(G, ws[None], cfg.feature_idx, computed_after(carry, grad),
                                     noise_mode=cfg.noise_mode)[0]

    active = ~state.done
    update = active & ~stop & (state.steps_done < state.max_steps)
    direction, adam = _adam().update(grad, state.adam)
    w = jnp.where(update, state.w - state.lr * direction, state.w)
    adam = jax.tree_util.tree_map(lambda new, old: jnp.where(update, new, old), adam, state.adam)
    finished = active & ~update  # stopped, or the budget is spent and this was the closing observation

    new_state = dataclasses.replace(
        state, w=w, adam=adam, points=points, refs_ready=jnp.bool_(True), feat0=feat0, feat_refs=feat_refs,
        steps_done=state.steps_done + update.astype(jnp.int32), done=state.done | finished,
        reached=state.reached | (active & stop))
    new_state = jax.tree_util.tree_map(lambda new, old: jnp.where(active, new, old), new_state, state)
    image = jnp.clip(img * jnp.float32(127.5) + jnp.float32(128), 0, 255).astype(jnp.uint8)
    losses = jnp.concatenate([motion, jnp.stack([masked, reg_term])])
    out = DragStepOutput(image=image, points=points, losses=losses, loss=feat_total + state.reg * reg_term, ws=ws,
                         grad=grad, stop=stop, updated=update, active=active)
    return new_state, out


# ----------------------------------------------------------------------------------------------------------------
# Many sessions: vmap, then shard over devices


def stack_states(states: list[DragState]) -> DragState:
    return jax.tree_util.tree_map(lambda *leaves: np.stack([np.asarray(x) for x in leaves]), *states)


def unstack(tree, count: int) -> list:
    return [jax.tree_util.tree_map(lambda leaf: leaf[i], tree) for i in range(count)]


@functools.cache  # one compiled program per (config, mesh, steps per call)
def _batched_step_fn(cfg: DragConfig, mesh, steps_per_call: int):
    def steps(G, state):
        return scan_steps(lambda carry: drag_step(G, carry, cfg), state, steps_per_call)

    def per_device(G, states):
        return jax.vmap(steps, in_axes=(None, 0))(G, states)
    return parallel.shard_problems(per_device, mesh)


def make_batched_step(cfg: DragConfig, mesh=None, steps_per_call: int = 1) -> Callable:
    """`fn(G, states) -> (states, outputs)` for a stack of sessions whose count is a multiple of the mesh's device
    count (`pad_sessions` pads one); the sessions are split over the devices and stay there between calls.

    Each call advances every session `steps_per_call` steps inside one jitted program (`loops.scan_steps`);
    outputs have shape [N, steps_per_call, ...]. Finished sessions ride along unchanged, so sessions with different
    budgets or early stops share one program.
    """
    mesh = parallel.data_mesh() if mesh is None else mesh
    return _batched_step_fn(cfg, mesh, steps_per_call)


def pad_sessions(states: DragState, mesh, size: int | None = None, count: int | None = None) -> tuple[DragState, int]:
    """Pad a stack of sessions to `size` (default: a multiple of the device count) with finished copies of the last
    session, which the step leaves untouched; returns (padded, real count). count: how many of `states` are real
    (default: all); the rest ride along finished, as padding does."""
    count = states.done.shape[0] if count is None else count
    size = -(-states.done.shape[0] // mesh.devices.size) * mesh.devices.size if size is None else size
    padded = parallel.pad_rows(jax.tree_util.tree_map(np.asarray, states), size)
    if size > count:
        padded = dataclasses.replace(padded, done=jnp.asarray(padded.done).at[count:].set(True))
    return padded, count


def run_sessions(G: SplitModel, cfg: DragConfig, states: list[DragState], *, mesh=None, steps_per_call: int = 1,
                 keep_images: bool = True, on_step: Callable[[int, int], None] | None = None,
                 padded_size: int | None = None, count: int | None = None):
    """Drive sessions until every one has finished; returns (final states, traces).

    Each trace is a dict of numpy arrays over that session's own steps (the calls where it was active):
    `points` [S, P, 2], `losses` [S, P + 2], `ws` [S, num_ws, w_dim], `stop`, `updated` [S], and `images`
    [S, H, W, C] uint8 when keep_images. The last step of a session is the observation that finished it, so its
    image and points belong to the final latent. `on_step(done_sessions, total)` is called after every call.

    In a job of several processes (a mesh over them) `states` are this process's sessions, `padded_size` the rows
    it feeds (`parallel.local_rows(...).size`) and `count` how many of `states` are real (a process with none
    passes one session as a template, count 0); every process calls until all sessions of the job have finished.
    """
    mesh = parallel.data_mesh() if mesh is None else mesh
    run = make_batched_step(cfg, mesh, steps_per_call)
    G = parallel.replicate(G, mesh)
    batched, count = pad_sessions(stack_states(states), mesh, padded_size, count)
    fields = ["points", "losses", "ws", "stop", "updated", "active"] + (["image"] if keep_images else [])
    history = {name: [] for name in fields}
    own_limit = int(max(np.asarray(s.max_steps) for s in states[:count])) + 1 if count else 0
    sizes = distributed.allgather_objects([count, own_limit])  # the job's session count and longest session
    total, limit = sum(c for c, _ in sizes), max(lim for _, lim in sizes)
    for _ in range(0, limit + steps_per_call, steps_per_call):
        batched, out = run(G, batched)
        out = parallel.to_host(out)
        for name in fields:
            history[name].append(np.asarray(getattr(out, name))[:count])
        done = parallel.to_host(batched.done)[:count]
        progress = distributed.allgather_objects([int(done.sum()), bool(done.all())])  # one answer for all
        if on_step is not None:
            on_step(sum(d for d, _ in progress), total)
        if all(finished for _, finished in progress):
            break
    history = {name: np.concatenate(parts, axis=1) for name, parts in history.items()}  # [N, calls, ...]
    traces = []
    for i in range(count):
        steps = history["active"][i]
        trace = {name: history[name][i][steps] for name in fields if name != "active"}
        if keep_images:
            trace["images"] = trace.pop("image")
        traces.append(trace)
    return unstack(jax.tree_util.tree_map(lambda leaf: leaf[:count], parallel.to_host(batched)), count), traces


# ----------------------------------------------------------------------------------------------------------------
# Jobs: sessions described by their start and settings, run together


@dataclasses.dataclass(frozen=True)
class DragJob:
    """One drag to run: its start (a seed, mapped and truncated as the DragGAN renderer does, or a latent w0), the
    handle points and their targets as (row, col) image pixels, an optional mask (1 = keep fixed, the renderer's
    convention) and the per-session settings. The defaults are the official renderer's and live here only."""

    points: tuple
    targets: tuple
    seed: int | None = None
    trunc: float = 0.7            # truncation psi of a seed's w0 (renderer `trunc_psi`)
    w0: Any = None                # [num_ws, w_dim] float32, instead of a seed
    mask: Any = None              # [H, W] float32, 1 = fixed; None: everything may move
    space: str = "w+"             # optimise the first 6 ws separately (w+) or one shared w
    steps: int = 200              # cap on Adam updates
    lr: float = 1e-3              # Adam step size
    lambda_mask: float = 20.0     # weight of the fixed-region term


@dataclasses.dataclass(frozen=True)
class DragOutcome:
    """One finished job, trimmed to its real points: `trace` holds `points` [S, n, 2], `losses` [S, n + 2],
    `ws` [S, num_ws, w_dim], `stop`, `updated` [S] and `images` [S, H, W, C]; row S-1 is the closing observation,
    whose image and points belong to `final_ws`."""

    trace: dict
    targets: np.ndarray   # [n, 2] int32
    final_ws: np.ndarray  # [num_ws, w_dim] float32
    reached: bool
    steps_done: int
    mask_used: bool


def start_latent(G: SplitModel, seed: int, trunc: float) -> np.ndarray:
    """w0 [num_ws, w_dim] of a seed as the DragGAN renderer builds it: mapping(RandomState(seed).randn(1, z_dim)),
    a zero class label, truncation psi `trunc` (`Renderer.init_network`)."""
    gcfg = G.config
    z = np.random.RandomState(seed).randn(1, gcfg.z_dim)
    return np.asarray(generators.mapping(G, z, np.zeros((1, gcfg.c_dim), np.float32), truncation_psi=trunc))[0]


def session_of(G: SplitModel, cfg: DragConfig, job: DragJob) -> DragState:
    """A fresh session for `job`; ValueError for a job that cannot run on this generator."""
    if (job.seed is None) == (job.w0 is None):
        raise ValueError("a drag job starts from exactly one of a seed and a latent w0")
    w0 = start_latent(G, job.seed, job.trunc) if job.w0 is None else job.w0
    return new_session(cfg, w0, job.points, job.targets, mask=job.mask, space=job.space, lr=job.lr,
                       lambda_mask=job.lambda_mask, max_steps=job.steps)


def trim_trace(trace: dict, count: int, max_points: int) -> dict:
    """A `run_sessions` trace with the padding points dropped (points [S, count, 2], losses [S, count + 2])."""
    out = {k: np.asarray(v) for k, v in trace.items()}
    out["points"] = out["points"][:, :count].astype(np.int32)
    losses = out["losses"]
    out["losses"] = np.concatenate([losses[:, :count], losses[:, max_points:]], axis=1).astype(np.float32)
    out["ws"] = out["ws"].astype(np.float32)
    return out


def prepare_jobs(G: SplitModel, cfg: DragConfig, jobs: list[DragJob], names: list[str] | None = None
                 ) -> list[DragState]:
    """The fresh sessions of `jobs`, every job checked before anything runs: a ValueError names the job by
    `names[i]` when given."""
    states = []
    for i, job in enumerate(jobs):
        try:
            states.append(session_of(G, cfg, job))
        except ValueError as e:
            raise ValueError(f"job {names[i]!r}: {e}" if names and names[i] else str(e)) from None
    return states


def owned_jobs(count: int, mesh=None) -> list[int]:
    """The jobs (indices) whose sessions this process runs in `run_jobs` over `mesh` (default: `mesh_for(count)`):
    all of them in a one-process job."""
    mesh = parallel.mesh_for(count) if mesh is None else mesh
    return list(parallel.local_rows(count, mesh).real) if parallel.multiprocess(mesh) else list(range(count))


def run_jobs(G: SplitModel, cfg: DragConfig, jobs: list[DragJob], *, sessions: list[DragState] | None = None,
             mesh=None, steps_per_call: int = 1, on_step: Callable[[int, int], None] | None = None,
             names: list[str] | None = None) -> list[DragOutcome]:
    """Run drag jobs together until each has finished: all advance in one batched step per call, spread over
    `mesh` (default: as many devices as jobs, `parallel.mesh_for`). `sessions`: the sessions of the jobs this
    process runs (`owned_jobs`: all of them in one process) when the caller has prepared them already (else they
    are prepared here). `on_step(finished, total)` after every call. Returns the outcomes of those jobs: in a job
    of several processes each process prepares, runs and returns only its own."""
    mesh = parallel.mesh_for(len(jobs)) if mesh is None else mesh
    mine = owned_jobs(len(jobs), mesh)
    states = prepare_jobs(G, cfg, [jobs[i] for i in mine], names and [names[i] for i in mine]) \
        if sessions is None else sessions
    if len(states) != len(mine):
        raise ValueError(f"{len(states)} sessions for the {len(mine)} jobs this process runs")
    rows = parallel.local_rows(len(jobs), mesh) if parallel.multiprocess(mesh) else None
    template = states or prepare_jobs(G, cfg, jobs[:1])  # a process with no job of its own feeds padding
    finals, traces = run_sessions(G, cfg, template, mesh=mesh, steps_per_call=steps_per_call, on_step=on_step,
                                  padded_size=None if rows is None else rows.size, count=len(states))
    return [DragOutcome(trace=trim_trace(trace, len(job.points), cfg.max_points),
                        targets=np.asarray(job.targets, np.int32),
                        final_ws=np.asarray(assemble_ws(cfg, state.w, state.w0, state.w_space), np.float32),
                        reached=bool(state.reached), steps_done=int(state.steps_done), mask_used=bool(state.use_mask))
            for job, state, trace in zip([jobs[i] for i in mine], finals, traces)]
