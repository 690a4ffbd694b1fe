"""EditGAN: segmentation-guided latent editing, edit vectors, and self-supervised refinement, batched over images.

Follows EditGAN, nv-tlabs/editGAN_release@fef9ab8 (`Tool` is in `models/EditGAN/EditGAN_tool.py`):
- editing (`Tool.run_optimization_editGAN`):
  W+ is optimised from the image's latent w0 with Adam (lr 0.02 every step, default betas, eps 1e-8),
  `steps - 1` updates as the official `for _ in range(1, steps)`, and the final iterate is returned (the official
  "best latent" is an alias of the live tensor, so it is the final one too). The loss is
      15 * (10 * LPIPS(x*m, x0*m) + 5 * mean((x*m - x0*m)^2)) + CE(mean ensemble logits at the ROI, target labels)
  with x and x0 = G(w0) in [0, 1], m = 1 outside the edit region dilated by a 7x7 square (cv2.dilate 3x3, three
  iterations; pixels beyond the border never count), LPIPS with normalize=True averaged over the whole image, the
  MSE over all pixels and channels, and the cross-entropy averaged over the dilated region's pixels. The features
  are upsampled with `nearest` on the full grid, as in the official losses (`nn_upsamplers`, utils/model_utils.py).
  The official loss also has an encoder regulariser, 1 * MSE(w, E(x).detach()) with x in [0, 1] and E in train
  mode (batch statistics of the one image); it is added when an encoder is given (`encoder=`), and left out
  otherwise (the refinement below has none in the official code either).
- edit vectors (`edit_from_mask` in `run_app.py`):
  delta = w_edited - w0, stored with the class ids it touches: the classes of the region's
  pixels whose label the target changes (before or after), background (0) excluded; see `touched_classes`.
- applying a vector (`Tool.run_optimization_post_process`):
  w = w_in + scale * delta (scale is the official `UI_scale / 2`). Refinement starts
  there and runs the same optimisation without an encoder term: the target labels are the segmentation of the
  vector's result, the region is the union of the pixels of the vector's classes before and after the vector,
  dilated, and the RGB reference is G(w_in). `steps` <= 1 means no optimisation, as `finetune_steps`.

Batching. One edit is a fixed-shape `EditProblem`: the region's pixels are a padded list (capacity rounded up to a
power of two, padding weighted 0), so many edits with different regions `jax.vmap` into one program, which is
sharded over devices with `jaxgan.parallel`. It compiles once per (batch shape, capacity). The segmentation loss
gathers features only at the region's pixels (`segbranch.pixel_logits`); the 5.9 GiB feature stack of the
official step at 512 px never exists.

In a job of several processes (`jaxgan.distributed`) the optimisation runs on one mesh over every process's devices
and each process holds only its own edits (`owned_edits`); the processes agree on the region capacity and on how
many rows each feeds, so every process runs the same program. Rendering and segmenting run on each process's own
devices: they are independent per image, so no process waits for another's.
"""

import dataclasses
import functools
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax

from jaxgan import distributed, parallel
from jaxgan.edit.invert import as_rgb
from jaxgan.loops import scan_steps
from jaxgan.models import encoder as encoder_model
from jaxgan.models import lpips as lpips_model
from jaxgan.models import segbranch
from jaxgan.nn.split import SplitModel

LOSS_NAMES = ("lpips", "mse", "ce", "loss")
ENCODER_LOSS_NAMES = ("lpips", "mse", "ce", "encoder", "loss")  # with EditGAN's encoder regulariser
MIN_CAPACITY = 256
BACKGROUND = 0


@dataclasses.dataclass(frozen=True)
class EditConfig:
    """The official editing settings (`tool_car.json`, `Tool.__init__` defaults)."""

    steps: int = 30  # as the official `steps`: steps - 1 Adam updates
    learning_rate: float = 0.02
    rgb_weight: float = 15.0  # rgb_loss_weight
    lpips_weight: float = 10.0  # loss_dict.p_loss
    mse_weight: float = 5.0  # the official 5 * loss_dict.mse_loss (1)
    ce_weight: float = 1.0
    encoder_weight: float = 1.0  # encoder_loss_weight, when an encoder is given
    encoder_batch_norm: str = encoder_model.OFFICIAL_BATCH_NORM
    dilation: int = 7  # square side: cv2.dilate with a 3x3 kernel, 3 iterations
    feature_mode: str = "nearest"
    # Region pixels per tile of the segmentation loss. Under autodiff each tile is rematerialised; smaller tiles
    # trade a little speed for memory (XLA's estimate for a 256 px config-F edit step: 2.07 GiB of temporaries with
    # 16384, 1.69 GiB with 4096, 1.46 GiB with 2048).
    tile: int = 4096

    def __post_init__(self):
        if self.steps < 0:
            raise ValueError(f"steps must be >= 0, got {self.steps}")
        if self.dilation < 1 or self.dilation % 2 == 0:
            raise ValueError(f"dilation must be an odd size >= 1, got {self.dilation}")
        if self.feature_mode not in segbranch.FEATURE_MODES:
            raise ValueError(f"feature_mode must be one of {segbranch.FEATURE_MODES}, got {self.feature_mode!r}")

    @property
    def updates(self) -> int:
        return max(self.steps - 1, 0)


# ----------------------------------------------------------------------------------------------------------------
# One edit as data


@dataclasses.dataclass(frozen=True)
class EditProblem:
    """Everything one optimisation needs, with static shapes: [num_ws, w_dim], [H, W, C], [H, W], [P] x 4."""

    w_start: Any
    reference: Any  # G(w_ref) in [0, 1]: the image outside the region must stay like this
    outside: Any  # float32, 1 where the RGB losses apply (outside the dilated region)
    roi_y: Any
    roi_x: Any
    roi_label: Any  # target class of each region pixel
    roi_weight: Any  # 1 for the region's pixels, 0 for padding


@dataclasses.dataclass(frozen=True)
class EditState:
    w: Any
    adam: Any
    step: Any


for _cls, _fields in ((EditProblem, [f.name for f in dataclasses.fields(EditProblem)]),
                      (EditState, ["w", "adam", "step"])):
    jax.tree_util.register_dataclass(_cls, data_fields=_fields, meta_fields=[])


def dilate_square(mask: np.ndarray, size: int) -> np.ndarray:
    """Binary dilation by a size x size square; outside the image counts as empty (cv2.dilate's border)."""
    mask = np.asarray(mask, bool)
    r = size // 2
    padded = np.pad(mask, r)
    rows = np.zeros((padded.shape[0], mask.shape[1]), bool)
    for dx in range(size):
        rows |= padded[:, dx: dx + mask.shape[1]]
    out = np.zeros_like(mask)
    for dy in range(size):
        out |= rows[dy: dy + mask.shape[0]]
    return out


def capacity_for(count: int) -> int:
    """The padded length of a region-pixel list: the next power of two (so only a few shapes ever compile)."""
    return max(MIN_CAPACITY, 1 << max(int(count) - 1, 0).bit_length())


def region_pixels(region: np.ndarray, labels: np.ndarray, capacity: int):
    """Row-major (y, x, label, weight) of the region's pixels, padded to `capacity` with weight 0."""
    ys, xs = np.nonzero(region)
    count = ys.shape[0]
    if count > capacity:
        raise ValueError(f"{count} region pixels exceed the capacity {capacity}")
    pad = capacity - count

    def padded(a, dtype):
        return np.concatenate([a.astype(dtype), np.zeros(pad, dtype)])
    return (padded(ys, np.int32), padded(xs, np.int32), padded(labels[ys, xs], np.int32),
            padded(np.ones(count), np.float32))


def job_capacity(counts, mesh=None) -> int:
    """The region capacity for edits with `counts` dilated region pixels; over a mesh of several processes the
    largest of every process's (each process holds only its own edits, and all must run one program)."""
    capacity = capacity_for(int(np.max(counts, initial=0)))
    if mesh is not None and parallel.multiprocess(mesh):
        capacity = max(distributed.allgather_objects(capacity))
    return capacity


def make_problems(w_start, reference01, regions, target_labels, cfg: EditConfig, capacity: int | None = None,
                  mesh=None):
    """Host-side EditProblems for N edits (N may be 0: a process of a job with no edit of its own): regions
    [N, H, W] bool (undilated), target labels [N, H, W]. capacity: default `job_capacity` over `mesh`."""
    regions = np.asarray(regions, bool)
    dilated = np.zeros(regions.shape, bool)
    for i, region in enumerate(regions):
        dilated[i] = dilate_square(region, cfg.dilation)
    counts = dilated.sum(axis=(1, 2))
    capacity = job_capacity(counts, mesh) if capacity is None else capacity
    pixels = [region_pixels(d, t, capacity) for d, t in zip(dilated, target_labels)]
    columns = list(zip(*pixels)) if pixels else [()] * 4
    ys, xs, labels, weights = (np.stack(c) if pixels else np.zeros((0, capacity), dtype)
                               for c, dtype in zip(columns, (np.int32, np.int32, np.int32, np.float32)))
    return EditProblem(w_start=np.asarray(w_start, np.float32), reference=np.asarray(reference01, np.float32),
                       outside=(~dilated).astype(np.float32), roi_y=ys, roi_x=xs, roi_label=labels,
                       roi_weight=weights), dilated


# ----------------------------------------------------------------------------------------------------------------
# The loss and the step for one edit


def _adam():
    return optax.scale_by_adam(b1=0.9, b2=0.999, eps=1e-8)


def loss_names(with_encoder: bool = False) -> tuple[str, ...]:
    return ENCODER_LOSS_NAMES if with_encoder else LOSS_NAMES


def edit_losses(G: SplitModel, S: SplitModel, lpips: SplitModel, w, problem: EditProblem, cfg: EditConfig,
                encoder: SplitModel | None = None):
    """(total loss, [lpips, mse, ce, total]) of latent w [num_ws, w_dim] for one problem; with an encoder
    [lpips, mse, ce, encoder, total] (`loss_names(True)`)."""
    image, feats = segbranch.layer_features(G, w[None])
    image01 = (image + 1) / 2
    outside = problem.outside[None, :, :, None]
    masked, reference = image01 * outside, problem.reference[None] * outside
    dist = lpips_model.lpips_distance(lpips, as_rgb(masked), as_rgb(reference), normalize=True)[0]
    mse = jnp.mean(jnp.square(masked - reference))
    features = tuple(f[0] for f in feats)
    logits = segbranch.pixel_logits(S, features, problem.roi_y, problem.roi_x, image.shape[1], cfg.feature_mode,
                                    tile=cfg.tile)
    log_p = jax.nn.log_softmax(segbranch.mean_logits(logits), axis=-1)
    nll = -jnp.take_along_axis(log_p, problem.roi_label[:, None], axis=-1)[:, 0]
    ce = jnp.sum(nll * problem.roi_weight) / jnp.maximum(jnp.sum(problem.roi_weight), 1)
    total = cfg.rgb_weight * (cfg.lpips_weight * dist + cfg.mse_weight * mse) + cfg.ce_weight * ce
    if encoder is None:
        return total, jnp.stack([dist, mse, ce, total])
    encoded = jax.lax.stop_gradient(encoder_model.encode(encoder, image01, batch_norm=cfg.encoder_batch_norm)[0])
    regression = jnp.mean(jnp.square(w - encoded))
    total = total + cfg.encoder_weight * regression
    return total, jnp.stack([dist, mse, ce, regression, total])


def init_state(w_start) -> EditState:
    w = jnp.asarray(w_start, jnp.float32)
    return EditState(w=w, adam=_adam().init(w), step=jnp.int32(0))


def edit_step(G: SplitModel, S: SplitModel, lpips: SplitModel, problem: EditProblem, state: EditState,
              cfg: EditConfig, encoder: SplitModel | None = None) -> tuple[EditState, jax.Array]:
    """One Adam update of one edit; returns the new state and the losses (`loss_names`) at the pre-update latent."""
    grad, losses = jax.grad(lambda w: edit_losses(G, S, lpips, w, problem, cfg, encoder), has_aux=True)(state.w)
    direction, adam = _adam().update(grad, state.adam)
    return EditState(w=state.w - cfg.learning_rate * direction, adam=adam, step=state.step + 1), losses


# ----------------------------------------------------------------------------------------------------------------
# Many edits: vmap, scan, shard


@functools.cache
def _batched_steps(cfg: EditConfig, mesh, steps_per_call: int):
    def per_problem(G, S, lpips, encoder, problem, state):
        return scan_steps(lambda carry: edit_step(G, S, lpips, problem, carry, cfg, encoder), state, steps_per_call)

    def per_device(shared, batched):
        G, S, lpips, *encoder = shared  # the encoder, when there is one
        problems, states = batched
        encoder = encoder[0] if encoder else None
        return jax.vmap(per_problem, in_axes=(None, None, None, None, 0, 0))(G, S, lpips, encoder, problems, states)
    return parallel.shard_problems(per_device, mesh)


def optimize(G: SplitModel, S: SplitModel, lpips: SplitModel, problems: EditProblem, cfg: EditConfig, *,
             mesh=None, steps_per_call: int = 1, on_progress: Callable[[int], None] | None = None,
             encoder: SplitModel | None = None, padded_size: int | None = None):
    """Run cfg.updates Adam updates on every problem at once; returns (final ws [N, num_ws, w_dim], losses
    [N, updates, columns] in `loss_names(encoder is not None)` order). The problems are split over `mesh`
    (default: up to N devices). `encoder`: EditGAN's encoder, for the official encoder regulariser.
    padded_size: the rows this process feeds the mesh (default: N rounded up to the mesh size); over a mesh of
    several processes `problems` are this process's own and padded_size is the same on every process."""
    count = problems.w_start.shape[0]
    # Default: one device per problem up to all devices (padding a single edit to 8 copies helps no one).
    mesh = parallel.mesh_for(count) if mesh is None else mesh
    size = -(-count // mesh.devices.size) * mesh.devices.size if padded_size is None else padded_size
    problems_p = parallel.pad_rows(problems, size)  # padding repeats the last problem, zeros where there is none
    states_p = jax.tree_util.tree_map(np.asarray, jax.vmap(init_state)(jnp.asarray(problems_p.w_start)))
    shared = parallel.replicate((G, S, lpips) + (() if encoder is None else (encoder,)), mesh)
    losses, done = [], 0
    while done < cfg.updates:
        k = min(steps_per_call, cfg.updates - done)
        states_p, step_losses = _batched_steps(cfg, mesh, k)(shared, (problems_p, states_p))
        losses.append(parallel.to_host(step_losses)[:count])
        done += k
        if on_progress is not None:
            on_progress(k)
    ws = parallel.to_host(states_p.w)[:count]
    columns = len(loss_names(encoder is not None))
    return ws, (np.concatenate(losses, axis=1) if losses else np.zeros((count, 0, columns), np.float32))


# ----------------------------------------------------------------------------------------------------------------
# Rendering and segmenting latents


RENDER_CHUNK = 8
ENSEMBLE_RULES = ("mean", "vote")


@functools.cache  # one program per (mode, tile, ensemble, mesh), so repeated calls reuse its compilations
def _render_program(mode: str, tile: int, ensemble: str, mesh):
    def one(G, S, w):
        image, feats = segbranch.layer_features(G, w[None])
        logits = segbranch.segment_logits(S, tuple(f[0] for f in feats), image.shape[1], mode, tile=tile)
        labels = segbranch.mean_logit_labels(logits) if ensemble == "mean" else segbranch.majority_vote(logits)
        return image[0], labels, segbranch.image_uncertainty(segbranch.js_uncertainty(logits))

    def per_device(models, ws):
        G, S = models
        return jax.vmap(one, in_axes=(None, None, 0))(G, S, ws)
    return parallel.shard_problems(per_device, mesh)


def render_with_uncertainty(G: SplitModel, S: SplitModel, ws, mode: str = "bilinear",
                            tile: int = segbranch.DEFAULT_TILE, ensemble: str = "mean", mesh=None):
    """Images [N, H, W, C] in [-1, 1], segmentations [N, H, W] (int32) and DatasetGAN's uncertainty score [N]
    (mean of the top tenth of the pixels' JS divergence) of latents [N, num_ws, w_dim].

    mode: `bilinear` is the official display path, `nearest` the one the losses use. ensemble: `mean` (EditGAN:
    argmax of the mean logits) or `vote` (DatasetGAN: majority of the models' argmaxes). At most RENDER_CHUNK images
    per device at a time (the last chunk padded, so one shape compiles), so memory does not grow with N; spread
    over `mesh` (default: as many of this process's devices as latents: in a job of several processes each
    renders its own latents, N may be 0)."""
    if ensemble not in ENSEMBLE_RULES:
        raise ValueError(f"ensemble must be one of {ENSEMBLE_RULES}, got {ensemble!r}")
    segbranch.check_compatible(segbranch.FeatureLayout.of_generator(G.config), S.config)
    ws = np.asarray(ws, np.float32)
    if len(ws) == 0:
        res, channels = G.config.img_resolution, G.config.img_channels
        return (np.zeros((0, res, res, channels), np.float32), np.zeros((0, res, res), np.int32),
                np.zeros((0,), np.float32))
    mesh = parallel.mesh_for(len(ws), jax.local_devices()) if mesh is None else mesh
    return parallel.map_chunks(_render_program(mode, tile, ensemble, mesh), (G, S), ws, batch_size=RENDER_CHUNK,
                               mesh=mesh)


def render(G: SplitModel, S: SplitModel, ws, mode: str = "bilinear", tile: int = segbranch.DEFAULT_TILE):
    """Images [N, H, W, C] in [-1, 1] and their ensemble-mean segmentations [N, H, W] (int32)."""
    images, labels, _ = render_with_uncertainty(G, S, ws, mode, tile)
    return images, labels


def touched_classes(before: np.ndarray, target: np.ndarray, region: np.ndarray) -> list[int]:
    """The classes an edit changes: labels before or after at the region's pixels where they differ, background
    excluded. If the target changes nothing there, the non-background target classes in the region."""
    changed = region & (before != target)
    ids = set(np.unique(before[changed])) | set(np.unique(target[changed])) if changed.any() \
        else set(np.unique(target[region]))
    return sorted(int(i) for i in ids if i != BACKGROUND)


def check_edit_inputs(G: SplitModel, S: SplitModel, ws, targets, regions):
    """ValueError for edit inputs that do not fit the generator and the branch (shapes, class ids, empty regions)."""
    cfg = G.config
    res = cfg.img_resolution
    segbranch.check_compatible(segbranch.FeatureLayout.of_generator(cfg), S.config)
    if ws.ndim != 3 or ws.shape[1:] != (cfg.num_ws, cfg.w_dim):
        raise ValueError(f"latents must have shape [N, {cfg.num_ws}, {cfg.w_dim}] (W+), got {ws.shape}")
    for name, a in (("target segmentations", targets), ("edit regions", regions)):
        if a.shape != (ws.shape[0], res, res):
            raise ValueError(f"{name} must have shape [{ws.shape[0]}, {res}, {res}] (one per latent, at the "
                             f"generator's resolution), got {a.shape}")
    bad = (targets < 0) | (targets >= S.config.num_classes)
    if bad.any():
        i = int(np.argwhere(bad.reshape(len(targets), -1).any(axis=1))[0, 0])
        raise ValueError(f"target segmentation {i} has class id {int(targets[i][bad[i]].max())}; the segmentation "
                         f"branch knows ids 0..{S.config.num_classes - 1}")
    empty = [i for i, r in enumerate(regions) if not r.any()]
    if empty:
        raise ValueError(f"edit region {empty[0]} marks no pixels; there is nothing to edit")


def owned_edits(count: int, mesh=None) -> tuple[list[int], int | None]:
    """(the edits, as indices into the job's `count`, that this process holds in `edit` over `mesh` (default:
    `mesh_for(count)`), the `padded_size` it feeds): all of them and None in a one-process job."""
    mesh = parallel.mesh_for(count) if mesh is None else mesh
    if not parallel.multiprocess(mesh):
        return list(range(count)), None
    rows = parallel.local_rows(count, mesh)
    return list(rows.real), rows.size


def edit(G: SplitModel, S: SplitModel, lpips: SplitModel, ws, targets, regions, cfg: EditConfig | None = None, *,
         mesh=None, steps_per_call: int = 1, on_progress: Callable[[int], None] | None = None,
         encoder: SplitModel | None = None, padded_size: int | None = None) -> dict:
    """EditGAN edits of N latents at once (`Tool.run_optimization_editGAN`).

    ws [N, num_ws, w_dim] (W+), targets [N, H, W] class ids (the wanted segmentation; only its region pixels
    matter), regions [N, H, W] bool (the pixels the user edited; dilated here). Returns numpy arrays: `ws` (edited),
    `vectors` (ws - input), `class_ids` (list per edit, `touched_classes`), `images` / `labels` before and after
    (display path, bilinear), `losses` [N, updates, columns] with their `loss_names`, `region_pixels` (dilated
    region sizes). `encoder`: EditGAN's encoder, whose regulariser the official edit loss includes.

    In a job of several processes (`mesh` over them: the default there) ws, targets and regions are this process's
    edits, `owned_edits`, and padded_size is the size it returns.
    """
    cfg = EditConfig() if cfg is None else cfg
    mesh = parallel.mesh_for(len(ws)) if mesh is None else mesh
    prepared = prepare_edits(G, S, ws, targets, regions, cfg, mesh=mesh)
    edited, losses = optimize(G, S, lpips, prepared["problems"], cfg, mesh=mesh, steps_per_call=steps_per_call,
                              on_progress=on_progress, encoder=encoder, padded_size=padded_size)
    images_after, labels_after = render(G, S, edited, tile=cfg.tile)
    return {
        "ws": edited, "vectors": edited - prepared["ws"], "losses": losses, "class_ids": prepared["class_ids"],
        "loss_names": loss_names(encoder is not None),
        "images_before": prepared["images_before"], "labels_before": prepared["labels_before"],
        "images_after": images_after, "labels_after": labels_after, "region_pixels": prepared["region_pixels"],
    }


def prepare_edits(G: SplitModel, S: SplitModel, ws, targets, regions, cfg: EditConfig, mesh=None) -> dict:
    """What `edit` optimises, checked and built on the host: `problems` (an EditProblem of N), `ws`, the display
    renders `images_before` / `labels_before`, `class_ids` (per edit, `touched_classes`) and `region_pixels` (the
    dilated regions' sizes). The server steps these problems itself, a session at a time. `mesh`: the mesh they
    will run on, whose processes agree on the region capacity (`job_capacity`)."""
    ws = np.asarray(ws, np.float32)
    targets, regions = np.asarray(targets), np.asarray(regions, bool)
    check_edit_inputs(G, S, ws, targets, regions)
    images_before, labels_before = render(G, S, ws, tile=cfg.tile)
    _, nearest_before = render(G, S, ws, mode=cfg.feature_mode, tile=cfg.tile)
    problems, dilated = make_problems(ws, (images_before + 1) / 2, regions, targets.astype(np.int32), cfg, mesh=mesh)
    return {"problems": problems, "ws": ws, "images_before": images_before, "labels_before": labels_before,
            "class_ids": [touched_classes(b, t, r) for b, t, r in zip(nearest_before, targets, regions)],
            "region_pixels": dilated.sum(axis=(1, 2))}


def apply_vector(ws, vector, scale: float):
    """w + scale * delta for latents [N, num_ws, w_dim] and one vector [num_ws, w_dim]."""
    return np.asarray(ws, np.float32) + np.float32(scale) * np.asarray(vector, np.float32)[None]


def apply_and_refine(G: SplitModel, S: SplitModel, lpips: SplitModel | None, ws, vector, class_ids, scale: float,
                     cfg: EditConfig | None = None, *, mesh=None, steps_per_call: int = 1,
                     on_progress: Callable[[int], None] | None = None) -> dict:
    """Apply an edit vector to N latents, then (cfg.steps > 1) refine each as `Tool.run_optimization_post_process`.

    class_ids: the vector's classes (they define the refinement region). Returns `ws`, `images_before`,
    `labels_before`, `images_after`, `labels_after`, `losses` [N, updates, 4], and `region_pixels` [N] (0 where an
    image shows none of the classes before or after, so it is left as the vector made it).

    In a job of several processes (`mesh` over them: the default there) ws are this process's latents (any share
    of the job's). Which of them need refining depends on the images, so the refinements are pooled over the
    processes and split over the devices as one process would split them (`optimize_pooled`).
    """
    cfg = EditConfig(steps=0) if cfg is None else cfg
    if cfg.updates > 0 and lpips is None:
        raise ValueError("refinement needs an LPIPS model")
    job_mesh = parallel.mesh_for(len(ws)) if mesh is None else mesh
    prepared = prepare_refinements(G, S, ws, vector, class_ids, scale, cfg, mesh=job_mesh)
    moved = prepared["moved"]
    result = {"images_before": prepared["images_before"], "labels_before": prepared["labels_before"], "ws": moved,
              "losses": np.zeros((len(moved), cfg.updates, len(LOSS_NAMES)), np.float32),  # 0 where not refined
              "region_pixels": prepared["region_pixels"]}
    idx = prepared["refined"]
    refined = None
    if parallel.multiprocess(job_mesh) and cfg.updates > 0:
        refined, losses = optimize_pooled(G, S, lpips, prepared["problems"], cfg, mesh=job_mesh,
                                          steps_per_call=steps_per_call, on_progress=on_progress)
    elif len(idx):
        refined, losses = optimize(G, S, lpips, prepared["problems"], cfg, mesh=mesh, steps_per_call=steps_per_call,
                                   on_progress=on_progress)
    if refined is not None:
        result["ws"] = moved.copy()
        result["ws"][idx] = refined
        result["losses"][idx] = losses
    result["images_after"], result["labels_after"] = render(G, S, result["ws"], tile=cfg.tile)
    return result


def optimize_pooled(G: SplitModel, S: SplitModel, lpips: SplitModel, problems: EditProblem, cfg: EditConfig, *,
                    mesh, steps_per_call: int = 1, on_progress: Callable[[int], None] | None = None,
                    encoder: SplitModel | None = None):
    """`optimize` of every process's `problems` (any number each, 0 included) as one batch over `mesh`, a mesh of
    several processes with the same region capacity: the batch is split over the devices as one process would
    split it, whichever process a problem came from, so each device runs the rows and the program it would run in
    one process (Adam's normalised steps magnify any rounding difference) and the work is spread evenly. Returns
    this process's (ws, losses). Every process holds the pooled problems meanwhile, as one process holds all."""
    counts = distributed.allgather_objects(int(problems.w_start.shape[0]))
    start = sum(counts[:jax.process_index()])
    total = sum(counts)
    if total == 0:
        return np.zeros(problems.w_start.shape, np.float32), np.zeros((0, cfg.updates, len(loss_names(
            encoder is not None))), np.float32)
    pooled = jax.tree_util.tree_map(distributed.allgather_rows, problems)
    rows = parallel.local_rows(total, mesh)
    own = jax.tree_util.tree_map(lambda a: a[rows.real.start:rows.real.stop], pooled)
    ws, losses = optimize(G, S, lpips, own, cfg, mesh=mesh, steps_per_call=steps_per_call, on_progress=on_progress,
                          encoder=encoder, padded_size=rows.size)
    back = slice(start, start + counts[jax.process_index()])
    return distributed.allgather_rows(ws)[back], distributed.allgather_rows(losses)[back]


def prepare_refinements(G: SplitModel, S: SplitModel, ws, vector, class_ids, scale: float, cfg: EditConfig,
                        mesh=None) -> dict:
    """What `apply_and_refine` optimises: `moved` (ws + scale * vector), the display renders of the inputs
    `images_before` / `labels_before`, `refined` (indices of the latents to refine: cfg.updates > 0 and an image
    that shows one of the classes before or after), their `problems` (None when there are none, unless `mesh`
    spans several processes: then an EditProblem of 0 rows, as the processes agree on the region capacity) and
    `region_pixels` [N] (0 where not refined)."""
    ws = np.asarray(ws, np.float32)
    gcfg = G.config
    if ws.ndim != 3 or ws.shape[1:] != (gcfg.num_ws, gcfg.w_dim):
        raise ValueError(f"latents must have shape [N, {gcfg.num_ws}, {gcfg.w_dim}] (W+), got {ws.shape}")
    moved = apply_vector(ws, vector, scale)
    images_before, labels_before = render(G, S, ws, tile=cfg.tile)
    out = {"moved": moved, "images_before": images_before, "labels_before": labels_before,
           "refined": np.zeros(0, np.int64), "problems": None, "region_pixels": np.zeros(len(ws), np.int64)}
    if cfg.updates > 0:
        if not class_ids:
            raise ValueError("refinement needs the vector's class ids (they define the region to refine)")
        _, near_before = render(G, S, ws, mode=cfg.feature_mode, tile=cfg.tile)
        _, near_moved = render(G, S, moved, mode=cfg.feature_mode, tile=cfg.tile)
        regions = np.isin(near_before, class_ids) | np.isin(near_moved, class_ids)
        idx = np.flatnonzero(regions.any(axis=(1, 2)))
        if len(idx) or (mesh is not None and parallel.multiprocess(mesh)):
            out["problems"], dilated = make_problems(moved[idx], (images_before[idx] + 1) / 2, regions[idx],
                                                     near_moved[idx], cfg, mesh=mesh)
            out["refined"] = idx
            out["region_pixels"][idx] = dilated.sum(axis=(1, 2))
    return out
