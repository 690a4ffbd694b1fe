"""Training the DatasetGAN / EditGAN pixel-classifier ensemble on a few annotated images, and scoring it.

Follows EditGAN `train_interpreter.py` (`prepare_data`, `main`; nv-tlabs/editGAN_release@fef9ab8), with the
classifiers of `models/DatasetGAN/classifer.py` and the features of `Generator.g_synthesis` (`jaxgan.models.segbranch`):
- Inputs are W+ latents of the annotated images and their label masks on the out_res x out_res feature grid.
  Mask cleaning as the official code: in each image, every label id 1..49 with fewer than 30 pixels is set to 0.
- Every pixel of every image is a training sample (background included). Its feature vector is the generator's
  layer features upsampled bilinearly to out_res and concatenated (6016 channels at 512 px).
- Cross-entropy (mean over the batch), Adam lr 1e-3 (b1 0.9, b2 0.999, eps 1e-8), batches of 64 pixels drawn by a
  fresh shuffle each epoch, BatchNorm in training mode. Linear weights N(0, 0.02), BatchNorm at PyTorch's defaults.
- Early stop per model, the official rule: from 0-based epoch 4 on, each batch's loss is compared with the best
  seen so far; a better one becomes the best and resets the count, any other adds one; when the count exceeds 50
  the model stops (after that batch's update). At most 100 epochs.

Memory. The official code stores the upsampled feature vector of every pixel, float16, then converts the whole
set to float32: car-32 is 75.7 GB + 151 GB. Here each image's maps are computed once and kept at their native
resolutions, float16, in `N x sum_k r_k^2 C_k x 2` bytes. For 32 images from a 512 px config-f generator
(maps 4,4, 8,8, ..., 512,512 px with 512,512,...,256,256,128,128,64,64 channels; sum_k r_k^2 C_k = 64,307,200)
that is 4,115,660,800 bytes (4.1 GB, 3.83 GiB): 18x less than the official float16 stack, 55x less than its
float16 + float32 copies. The two maps of each resolution are stored side by side as one [N, r, r, 2C] array (they
are neighbours in `g_synthesis`'s order, so the feature vector is the same), which halves the gathers per pixel. A
batch's feature vectors are gathered inside the compiled step from the bilinear taps (`segbranch.pixel_features`
with an image index per pixel), the float16 taps promoted to float32 before they are weighted. Each epoch also
holds one permutation per model, `num_models x N x out_res^2 x 4` bytes (335 MB for ten models, 32 images, 512 px).

Deviations from the official trainer, none of which changes the recipe of a single classifier:
- The `num_models` classifiers train at once, stacked on a leading model axis (one einsum for all), each with its
  own initial weights, its own shuffle of the pixels every epoch (independent keys) and its own early stop; a
  stopped model's weights, BatchNorm statistics and Adam moments are frozen while the others go on. The official
  code trains them one after another, from one global torch seed.
- The last partial batch of an epoch is dropped (PyTorch's DataLoader keeps it, as a smaller batch). With
  out_res a multiple of 8, out_res^2 is a multiple of 64 and nothing is dropped; the report says how many are.
- Square grids only: the car domain's 512x384 crop (rows 64:448 in `train_interpreter.py`) is not modelled; its
  masks would be padded to 512.

`evaluate` segments images with the trained ensemble (EditGAN's `Tool.run_seg` rule: the argmax of the mean logits) and
scores them against ground-truth masks: per-class accuracy (recall), pixel accuracy, per-class IoU and mIoU.
"""

import dataclasses
import functools
from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx

from jaxgan.models import segbranch
from jaxgan.models.segbranch import FeatureLayout, SegBranchConfig
from jaxgan.nn.split import SplitModel

FEATURE_DTYPE = jnp.float16  # the official code stores its features float16 too
CLEANED_LABELS = range(1, 50)  # the official `for target in range(1, 50)`: ids from 50 on are never cleaned
INITIAL_BEST_LOSS = 10000000.0  # the official `best_loss` before epoch 4


@dataclasses.dataclass(frozen=True)
class SegTrainConfig:
    """Official `train_interpreter.py` settings, plus how many steps one compiled call runs."""

    batch_size: int = 64
    learning_rate: float = 1e-3
    max_epochs: int = 100
    patience: int = 50  # a model stops when more than this many batches in a row missed its best loss
    watch_after_epoch: int = 3  # the stop rule looks at batches of epochs > 3 (0-based)
    min_label_pixels: int = 30  # ids 1..49 with fewer pixels in an image are set to 0 there
    steps_per_call: int = 1000  # iterations per compiled call (progress is reported between calls)
    feature_batch: int = 4  # images per generator call when the features are computed

    def __post_init__(self):
        for name in ("batch_size", "max_epochs", "steps_per_call", "feature_batch"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be positive, got {getattr(self, name)}")


ProgressFn = Callable[[int, int, np.ndarray, np.ndarray], None]


# ----------------------------------------------------------------------------------------------------------------
# Masks


def check_masks(masks, num_classes: int, out_res: int) -> np.ndarray:
    """Label masks [N, out_res, out_res] of integer class ids in [0, num_classes), as int32, or a ValueError."""
    masks = np.asarray(masks)
    if masks.ndim != 3 or masks.shape[1:] != (out_res, out_res):
        raise ValueError(f"label masks must be [N, {out_res}, {out_res}] (class ids on the out_res={out_res} "
                         f"feature grid), got shape {masks.shape}")
    if not np.issubdtype(masks.dtype, np.integer):
        if not np.issubdtype(masks.dtype, np.floating) or np.any(masks != np.round(masks)):
            raise ValueError(f"label masks must hold integer class ids, got dtype {masks.dtype}")
    for i, mask in enumerate(masks):
        bad = mask[(mask < 0) | (mask >= num_classes)]
        if bad.size:
            raise ValueError(f"label mask {i} has class id {int(bad.flat[0])}, outside [0, {num_classes}) "
                             f"(num_classes={num_classes})")
    return masks.astype(np.int32)


def clean_masks(masks, min_pixels: int = 30) -> np.ndarray:
    """The official clean-up of annotation artefacts: in each image, ids 1..49 with < min_pixels pixels become 0."""
    masks = np.array(masks, dtype=np.int32)  # a copy
    for mask in masks:
        ids, counts = np.unique(mask, return_counts=True)
        for label, count in zip(ids, counts):
            if label in CLEANED_LABELS and count < min_pixels:
                mask[mask == label] = 0
    return masks


# ----------------------------------------------------------------------------------------------------------------
# Features


def merge_same_resolution(maps):
    """Concatenate neighbouring maps of equal resolution on the channel axis ([N, r, r, C] each).

    The generator gives two maps per resolution, next to each other in `g_synthesis`'s order, so the concatenated
    feature vector is unchanged while a pixel needs half as many gathers (and the step compiles faster)."""
    merged = []
    for fmap in maps:
        if merged and merged[-1].shape[-2] == fmap.shape[-2]:
            merged[-1] = jnp.concatenate([merged[-1], fmap], axis=-1)
        else:
            merged.append(fmap)
    return tuple(merged)


@jax.jit
def _features_f16(G: SplitModel, ws):
    return tuple(f.astype(FEATURE_DTYPE) for f in merge_same_resolution(segbranch.layer_features(G, ws)[1]))


@functools.partial(jax.jit, donate_argnums=0)
def _store_at(store, batch, start):
    return tuple(jax.lax.dynamic_update_slice_in_dim(s, b, start, axis=0) for s, b in zip(store, batch))


def stored_features(G: SplitModel, ws, batch: int = 4):
    """Every image's layer features at their native resolutions: a tuple of float16 [N, r, r, C] device arrays,
    one per resolution (`merge_same_resolution`), in `g_synthesis`'s channel order.

    Computed `batch` images at a time into preallocated arrays (no concatenation, so the peak is the store plus
    one batch). The last batch is aligned to the end and recomputes a few images rather than compiling another
    batch shape."""
    ws = jnp.asarray(ws, jnp.float32)
    n = ws.shape[0]
    batch = min(batch, n)
    store = tuple(jnp.zeros((n,) + f.shape[1:], FEATURE_DTYPE) for f in jax.eval_shape(_features_f16, G, ws[:batch]))
    for start in range(0, n, batch):
        start = min(start, n - batch)
        store = _store_at(store, _features_f16(G, ws[start:start + batch]), start)
    return store


def feature_bytes(layout: FeatureLayout, num_images: int) -> int:
    """Bytes of the stored float16 features: N x sum_k r_k^2 C_k x 2."""
    return num_images * sum(r * r * c for r, c in zip(layout.resolutions, layout.channels)) * 2


# ----------------------------------------------------------------------------------------------------------------
# The official early-stop rule, per model


@dataclasses.dataclass(frozen=True)
class StopState:
    """Per-model [M] early-stop bookkeeping: best batch loss, batches since it, stopped flag."""

    best: jax.Array
    count: jax.Array
    stopped: jax.Array

    @classmethod
    def initial(cls, num_models: int) -> "StopState":
        return cls(jnp.full((num_models,), INITIAL_BEST_LOSS, jnp.float32), jnp.zeros((num_models,), jnp.int32),
                   jnp.zeros((num_models,), bool))


jax.tree_util.register_dataclass(StopState, data_fields=["best", "count", "stopped"], meta_fields=[])


def early_stop_update(state: StopState, loss, epoch, *, patience: int = 50, watch_after_epoch: int = 3) -> StopState:
    """One batch of the official rule (`if epoch > 3: ...; if break_count > 50: break`), vectorised over models.

    loss [M] is the batch loss just optimised; epoch is 0-based. The caller applies it only to models that took
    this step; a model whose `stopped` turns on keeps that step's update and takes no more."""
    watching = epoch > watch_after_epoch
    improved = loss < state.best
    best = jnp.where(watching & improved, loss, state.best)
    count = jnp.where(watching, jnp.where(improved, 0, state.count + 1), state.count)
    return StopState(best, count, state.stopped | (count > patience))


# ----------------------------------------------------------------------------------------------------------------
# The training loop


@dataclasses.dataclass(frozen=True)
class TrainState:
    """Everything that changes from step to step; per-model leaves have a leading [M] axis."""

    params: object
    buffers: object
    opt_state: object
    stop: StopState
    iterations: jax.Array  # [M] steps taken
    epochs: jax.Array  # [M] epochs in which a step was taken
    last_loss: jax.Array  # [M] loss of the last batch taken
    epoch_loss_sum: jax.Array  # [M] sum and number of this epoch's batch losses, for the per-epoch mean
    epoch_steps: jax.Array


jax.tree_util.register_dataclass(
    TrainState, data_fields=[f.name for f in dataclasses.fields(TrainState)], meta_fields=[])


def _select(take, new, old):
    """new where take ([M] per model; a scalar such as Adam's shared step count follows any model), else old."""
    def pick(a, b):
        if a.ndim == 0:
            return jnp.where(jnp.any(take), a, b)
        return jnp.where(take.reshape((-1,) + (1,) * (a.ndim - 1)), a, b)
    return jax.tree_util.tree_map(pick, new, old)


@functools.partial(jax.jit, static_argnames=("graphdef", "batch_size", "out_res", "num_steps"), donate_argnums=1)
def _train_chunk(graphdef, state: TrainState, features, labels, perms, epoch, first_step, steps_per_epoch,
                 learning_rate, patience, watch_after_epoch, *, batch_size: int, out_res: int, num_steps: int):
    """`num_steps` iterations of epoch `epoch` from batch `first_step` on; batches at or past steps_per_epoch are
    skipped (the epoch's tail in its last chunk), so every chunk has one compiled shape. The scalar settings are
    traced, so changing them (or the number of epochs) does not recompile."""
    optimizer = optax.adam(learning_rate)  # b1 0.9, b2 0.999, eps 1e-8: torch.optim.Adam's defaults
    grid = out_res * out_res
    num_models = perms.shape[0]

    def loss_fn(params, buffers, x, y):
        logits, new_buffers = segbranch.training_logits(SplitModel(graphdef, params, buffers), x)
        per_model = jnp.mean(optax.softmax_cross_entropy_with_integer_labels(logits, y), axis=1)
        return jnp.sum(per_model), (per_model, new_buffers)  # the models share no weights: sum = each model's grad

    def step(state: TrainState, t):
        pixels = jax.lax.dynamic_slice_in_dim(perms, t * batch_size, batch_size, axis=1).reshape(-1)
        images, rest = jnp.divmod(pixels, grid)
        ys, xs = jnp.divmod(rest, out_res)
        x = segbranch.pixel_features(features, ys, xs, out_res, "bilinear", images).astype(jnp.float32)
        x = x.reshape(num_models, batch_size, -1)
        y = labels[pixels].reshape(num_models, batch_size)
        # nnx.grad, not jax.grad: training_logits writes the BatchNorm running statistics into the merged module's
        # Buffers, which flax only allows at the trace level where the Variables were created.
        grads, (loss, buffers) = nnx.grad(loss_fn, has_aux=True)(state.params, state.buffers, x, y)
        updates, opt_state = optimizer.update(grads, state.opt_state, state.params)
        params = optax.apply_updates(state.params, updates)
        take = (t < steps_per_epoch) & ~state.stop.stopped
        stop = early_stop_update(state.stop, loss, epoch, patience=patience, watch_after_epoch=watch_after_epoch)
        new = TrainState(params, buffers, opt_state, stop, state.iterations + 1,
                         jnp.maximum(state.epochs, epoch + 1), loss, state.epoch_loss_sum + loss,
                         state.epoch_steps + 1)
        return _select(take, new, state), None

    return jax.lax.scan(step, state, first_step + jnp.arange(num_steps))[0]


_init_classifiers = jax.jit(segbranch.init_segbranch, static_argnums=0)


@functools.partial(jax.jit, static_argnames="num_pixels")
def _epoch_permutations(shuffle_keys, epoch, num_pixels: int):
    """One independent shuffle of all pixels per model [M, num_pixels] for this epoch."""
    return jax.vmap(lambda k: jax.random.permutation(jax.random.fold_in(k, epoch), num_pixels))(shuffle_keys)


def train_segbranch(G: SplitModel, ws, masks, num_classes: int, key, *, num_models: int = 10,
                    out_res: int | None = None, config: SegTrainConfig = SegTrainConfig(),
                    on_progress: ProgressFn | None = None) -> tuple[SplitModel, dict]:
    """Train `num_models` pixel classifiers on the annotated images (ws [N, num_ws, w_dim] W+ latents, masks
    [N, out_res, out_res] class ids; out_res defaults to the generator's resolution).

    on_progress(epoch, iteration, losses [M], stopped [M]) is called after every compiled chunk (0-based epoch,
    steps run so far, each model's last batch loss). Returns the trained classifiers and a report: per model the
    iterations, epochs, final and best batch loss (None before epoch 4) and whether it stopped early; the per-epoch
    mean batch loss of each model (None for a model that took no step that epoch); pixel and batch counts; the
    bytes of the stored features."""
    out_res = G.config.img_resolution if out_res is None else int(out_res)
    ws = np.asarray(ws, np.float32)
    expected_ws = (G.config.num_ws, G.config.w_dim)
    if ws.ndim != 3 or ws.shape[1:] != expected_ws:
        raise ValueError(f"ws must be W+ latents [N, {expected_ws[0]}, {expected_ws[1]}], got shape {ws.shape}")
    masks = check_masks(masks, num_classes, out_res)
    if masks.shape[0] != ws.shape[0]:
        raise ValueError(f"{ws.shape[0]} latents but {masks.shape[0]} label masks")
    cleaned = clean_masks(masks, config.min_label_pixels)

    layout = FeatureLayout.of_generator(G.config)
    features = stored_features(G, ws, config.feature_batch)
    num_pixels = cleaned.size
    steps_per_epoch = num_pixels // config.batch_size
    if steps_per_epoch == 0:
        raise ValueError(f"{num_pixels} labelled pixels make no batch of {config.batch_size}")
    num_steps = min(config.steps_per_call, steps_per_epoch)

    def zeros(dtype):  # a fresh array each: the state is donated, and one buffer cannot be donated twice
        return jnp.zeros((num_models,), dtype)

    init_key, shuffle_key = jax.random.split(key)
    # jitted: one compile, where eager nnx init compiles every random draw separately (3.3 s vs 2.3 s on CPU)
    S = _init_classifiers(SegBranchConfig(layout.feature_dim, num_classes, num_models), init_key)
    opt_state = optax.adam(config.learning_rate).init(S.params)
    state = TrainState(S.params, S.buffers, opt_state, StopState.initial(num_models),
                       zeros(jnp.int32), zeros(jnp.int32), zeros(jnp.float32), zeros(jnp.float32), zeros(jnp.int32))
    shuffle_keys = jax.random.split(shuffle_key, num_models)
    labels = jnp.asarray(cleaned.reshape(-1))

    epoch_mean_loss = []
    iteration = 0
    for epoch in range(config.max_epochs):
        perms = _epoch_permutations(shuffle_keys, epoch, num_pixels)
        state = dataclasses.replace(state, epoch_loss_sum=jnp.zeros_like(state.epoch_loss_sum),
                                    epoch_steps=jnp.zeros_like(state.epoch_steps))
        for first in range(0, steps_per_epoch, num_steps):
            state = _train_chunk(S.graphdef, state, features, labels, perms, epoch, first, steps_per_epoch,
                                 config.learning_rate, config.patience, config.watch_after_epoch,
                                 batch_size=config.batch_size, out_res=out_res, num_steps=num_steps)
            iteration += min(num_steps, steps_per_epoch - first)
            stopped = np.asarray(state.stop.stopped)
            if on_progress is not None:
                on_progress(epoch, iteration, np.asarray(state.last_loss), stopped)
            if stopped.all():
                break
        sums, steps = np.asarray(state.epoch_loss_sum), np.asarray(state.epoch_steps)
        epoch_mean_loss.append([float(s / k) if k else None for s, k in zip(sums, steps)])
        if np.asarray(state.stop.stopped).all():
            break

    best = np.asarray(state.stop.best)
    report = {
        "iterations": np.asarray(state.iterations).tolist(),
        "epochs": np.asarray(state.epochs).tolist(),
        "final_loss": np.asarray(state.last_loss).tolist(),
        "best_loss": [None if b >= INITIAL_BEST_LOSS else float(b) for b in best],
        "stopped_early": np.asarray(state.stop.stopped).tolist(),
        "epoch_mean_loss": epoch_mean_loss,
        "num_pixels": int(num_pixels),
        "steps_per_epoch": int(steps_per_epoch),
        "dropped_pixels_per_epoch": int(num_pixels - steps_per_epoch * config.batch_size),
        "cleaned_pixels": int(np.sum(cleaned != masks)),
        "feature_bytes": feature_bytes(layout, ws.shape[0]),
    }
    return SplitModel(S.graphdef, state.params, state.buffers), report


# ----------------------------------------------------------------------------------------------------------------
# Evaluation


@functools.partial(jax.jit, static_argnames=("out_res", "mode"))
def _segment_one(S: SplitModel, G: SplitModel, w, *, out_res: int, mode: str):
    features = tuple(f[0] for f in segbranch.layer_features(G, w[None])[1])
    return segbranch.mean_logit_labels(segbranch.segment_logits(S, features, out_res, mode))


def confusion_matrix(ground_truth, prediction, num_classes: int) -> np.ndarray:
    """[num_classes, num_classes] pixel counts, rows ground truth, columns prediction."""
    gt, pred = np.asarray(ground_truth).reshape(-1), np.asarray(prediction).reshape(-1)
    return np.bincount(gt * num_classes + pred, minlength=num_classes * num_classes).reshape(
        num_classes, num_classes).astype(np.int64)


def segmentation_metrics(confusion) -> dict:
    """Per-class accuracy (recall: correct / ground-truth pixels of the class; None where the class is absent from
    the ground truth), pixel accuracy, per-class IoU (None where the class is in neither ground truth nor
    prediction) and mIoU over the classes with an IoU."""
    confusion = np.asarray(confusion, np.int64)
    correct = np.diag(confusion)
    in_truth, in_prediction = confusion.sum(axis=1), confusion.sum(axis=0)
    union = in_truth + in_prediction - correct
    accuracy = [float(c / t) if t else None for c, t in zip(correct, in_truth)]
    iou = [float(c / u) if u else None for c, u in zip(correct, union)]
    present = [v for v in iou if v is not None]
    return {
        "per_class_accuracy": accuracy,
        "pixel_accuracy": float(correct.sum() / confusion.sum()) if confusion.sum() else None,
        "per_class_iou": iou,
        "miou": float(np.mean(present)) if present else None,
        "confusion": confusion,
    }


def evaluate(S: SplitModel, G: SplitModel, ws, masks, out_res: int | None = None, mode: str = "bilinear") -> dict:
    """Segment each image of ws [N, num_ws, w_dim] (mean of the ensemble's logits, then argmax) and score it
    against masks [N, out_res, out_res]; one image at a time, so memory does not grow with N. Masks are checked
    but not cleaned. Returns `segmentation_metrics` of the summed confusion matrix."""
    out_res = G.config.img_resolution if out_res is None else int(out_res)
    num_classes = S.config.num_classes
    masks = check_masks(masks, num_classes, out_res)
    ws = jnp.asarray(ws, jnp.float32)
    if ws.shape[0] != masks.shape[0]:
        raise ValueError(f"{ws.shape[0]} latents but {masks.shape[0]} label masks")
    confusion = np.zeros((num_classes, num_classes), np.int64)
    for w, mask in zip(ws, masks):
        prediction = np.asarray(_segment_one(S, G, w, out_res=out_res, mode=mode))
        confusion += confusion_matrix(mask, prediction, num_classes)
    return segmentation_metrics(confusion)


def training_record(checkpoint, names, seed: int, num_models: int, cfg, report: dict, class_names=None,
                    held_out=None, metrics=None) -> dict:
    """The sidecar entries of a trained segmentation branch: how it was trained, its class names, and its scores on
    held-out images (`held_out` = (names, ws, masks), `metrics` from `evaluate`)."""
    meta = {"training": {"checkpoint": str(checkpoint), "annotated": list(names), "seed": seed,
                         "num_models": num_models, "config": dataclasses.asdict(cfg),
                         "iterations": report["iterations"], "epochs": report["epochs"],
                         "stopped_early": report["stopped_early"], "feature_bytes": report["feature_bytes"]}}
    if class_names is not None:
        meta["class_names"] = class_names
    if metrics is not None:
        meta["evaluation"] = {"images": held_out[0], **{k: metrics[k] for k in
                                                          ("pixel_accuracy", "miou", "per_class_accuracy",
                                                           "per_class_iou")}}
    return meta
