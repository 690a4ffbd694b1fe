"""EditGAN's encoder training: the losses and the two optimiser steps of one iteration.

Follows `train_encoder.py:164-341` of nv-tlabs/editGAN_release@fef9ab8 (config `encoder_car.json`):

* Real step (`:213-236`): a batch of real images x in [-1, 1] is encoded, w = E(x), rendered back, x' = G(w), and
  the loss is 10 LPIPS(x', x) + 1 MSE(x', x) on the images mapped to [0, 1] (LPIPS with normalize=True). It is
  stepped only when `epoch > train_real_start_epochs` (5: the first six epochs, 0 ... 5, are a warm-up on samples).
* Sampling step (`:237-283`), every iteration, its own `optimizer.step()`: `sample_bs` = 2 latents z ~ N(0, I),
  w_s = mapping(z) truncated by psi 0.7 on all layers towards the generator's w_avg, x_s = G(w_s) (const noise);
  the loss is 5 MSE(E(x_s), w_s) + 10 LPIPS(G(E(x_s)), x_s) + 1 MSE(G(E(x_s)), x_s), the images again in [0, 1].
* One Adam (lr 3e-5, PyTorch's default betas (0.9, 0.999), eps 1e-8) over the encoder's parameters for both steps;
  the generator and LPIPS are frozen (only E's parameters are differentiated).
* The encoder runs in train mode: batch-statistics BatchNorm with the running statistics updated
  (`encoder.encode_train`), as the official encoder, which is never put in eval().

MSE is the mean over every element (`F.mse_loss`'s default), LPIPS the batch mean. The reconstruction is not
clamped before the [0, 1] mapping. Without an LPIPS model (`lpips=None`) the LPIPS terms are left out of the
losses and of the reported terms (the caller decides and says so): a cheaper, weaker variant, not the official one.

Data-parallel without changing the numbers: the steps are `jax.jit` programs of the whole batch, and the driver
(`encoder_run`) shards the batch over the devices and replicates the networks, so XLA's partitioner splits each
step and adds the cross-device reductions itself. The official BatchNorm normalises with the statistics of the
whole batch (8 real, 2 sampled images): here too, over every device's share (a per-device BatchNorm would change
the method, and one 32 px image per device has a single value per channel in its last map). The sampled latents
are drawn whole from the step's key, then constrained to the batch sharding (`batch_sharding`), so a run's numbers
do not depend on the device count beyond the order of floating-point sums.
"""

import dataclasses
import functools

import jax
import jax.numpy as jnp
import optax

from jaxgan.models import stylegan2
from jaxgan.models.encoder import encode_train
from jaxgan.models.lpips import lpips_distance
from jaxgan.nn.split import SplitModel
from jaxgan.train.settings import JsonSettings


@dataclasses.dataclass(frozen=True)
class EncoderTrainConfig(JsonSettings):
    """The official settings (`encoder_car.json`, `train_encoder.py`)."""

    SETTINGS_NAME = "encoder training settings"

    lr: float = 3e-5                      # encoder_car.json:6
    betas: tuple[float, float] = (0.9, 0.999)  # torch.optim.Adam defaults
    eps: float = 1e-8
    batch_size: int = 8                   # real images per real step (encoder_car.json:8)
    sample_bs: int = 2                    # sampled images per sampling step
    truncation_psi: float = 0.7           # all layers
    sample_w_weight: float = 5.0          # MSE(E(x_s), w_s)
    sample_lpips_weight: float = 10.0
    sample_mse_weight: float = 1.0
    real_lpips_weight: float = 10.0       # loss_dict.p_loss
    real_mse_weight: float = 1.0          # loss_dict.mse_loss
    train_real_start_epochs: int = 5      # real steps only when epoch > this
    seed: int = 0                         # encoder init, sampled latents, the epochs' shuffles

    def __post_init__(self):
        if self.batch_size < 1 or self.sample_bs < 1:
            raise ValueError(f"batch_size and sample_bs must be positive, got {self.batch_size} and "
                             f"{self.sample_bs}")
        if self.lr <= 0:
            raise ValueError(f"lr must be positive, got {self.lr}")
        if self.train_real_start_epochs < 0:
            raise ValueError(f"train_real_start_epochs must be at least 0, got {self.train_real_start_epochs}")


def trains_real(cfg: EncoderTrainConfig, epoch: int) -> bool:
    """The official warm-up rule: a real step only when `epoch > train_real_start_epochs` (epochs count from 0)."""
    return epoch > cfg.train_real_start_epochs


def optimizer(cfg: EncoderTrainConfig) -> optax.GradientTransformation:
    """torch.optim.Adam(lr, betas, eps) (optax adds eps outside the square root, as PyTorch)."""
    return optax.adam(cfg.lr, b1=cfg.betas[0], b2=cfg.betas[1], eps=cfg.eps)


def init_optimizer(E: SplitModel, cfg: EncoderTrainConfig):
    return optimizer(cfg).init(E.params)


def to_unit(images):
    """[-1, 1] -> [0, 1], the range of the official LPIPS(normalize=True) and MSE terms."""
    return (images + 1) / 2


def sample_latents(G: SplitModel, key, cfg: EncoderTrainConfig):
    """w_s [sample_bs, num_ws, w_dim]: z ~ N(0, I) from `key`, mapped and truncated by psi on every layer."""
    z = jax.random.normal(key, (cfg.sample_bs, G.config.z_dim), jnp.float32)
    return stylegan2.mapping(G, z, truncation_psi=cfg.truncation_psi)


def reconstruction_terms(G: SplitModel, lpips: SplitModel | None, ws, target) -> dict:
    """{'mse', 'lpips'} between G(ws) (const noise) and `target` ([-1, 1]), both mapped to [0, 1]; 'lpips' only
    with an LPIPS model."""
    recon, target = to_unit(stylegan2.synthesis(G, ws, noise_mode="const")), to_unit(target)
    terms = {"mse": jnp.mean(jnp.square(recon - target))}
    if lpips is not None:
        terms["lpips"] = jnp.mean(lpips_distance(lpips, recon, target, normalize=True))
    return terms


def _adam_step(E: SplitModel, opt_state, loss_fn, cfg: EncoderTrainConfig):
    """One Adam step on E's parameters of `loss_fn(E) -> (loss, (terms, E with updated buffers))`."""
    def loss_of(params):
        loss, (terms, trained) = loss_fn(SplitModel(E.graphdef, params, E.buffers))
        return loss, (terms, trained.buffers)

    (_, (terms, buffers)), grads = jax.value_and_grad(loss_of, has_aux=True)(E.params)
    updates, opt_state = optimizer(cfg).update(grads, opt_state, E.params)
    return SplitModel(E.graphdef, optax.apply_updates(E.params, updates), buffers), opt_state, terms


@functools.partial(jax.jit, static_argnames="cfg")
def real_step(E: SplitModel, opt_state, G: SplitModel, lpips: SplitModel | None, images, cfg: EncoderTrainConfig):
    """The official real-image step on `images` [B, H, W, 3] in [-1, 1] (G's resolution): returns (E, opt_state,
    {'real_mse', 'real_lpips' (with LPIPS), 'real_loss'})."""
    def loss_fn(E):
        ws, trained = encode_train(E, images)
        terms = reconstruction_terms(G, lpips, ws, images)
        loss = cfg.real_mse_weight * terms["mse"]
        if lpips is not None:
            loss = loss + cfg.real_lpips_weight * terms["lpips"]
        return loss, ({**{f"real_{k}": v for k, v in terms.items()}, "real_loss": loss}, trained)
    return _adam_step(E, opt_state, loss_fn, cfg)


@functools.partial(jax.jit, static_argnames=("cfg", "batch_sharding"))
def sampling_step(E: SplitModel, opt_state, G: SplitModel, lpips: SplitModel | None, key, cfg: EncoderTrainConfig,
                  batch_sharding=None):
    """The official sampling step on `sample_bs` generated images drawn with `key`: returns (E, opt_state,
    {'sample_w_mse', 'sample_mse', 'sample_lpips' (with LPIPS), 'sample_loss'}). batch_sharding: how to split the
    sampled batch over devices (a NamedSharding of its leading axis; None: as XLA decides)."""
    ws = jax.lax.stop_gradient(sample_latents(G, key, cfg))  # the generator is frozen
    if batch_sharding is not None:
        ws = jax.lax.with_sharding_constraint(ws, batch_sharding)
    images = jax.lax.stop_gradient(stylegan2.synthesis(G, ws, noise_mode="const"))

    def loss_fn(E):
        encoded, trained = encode_train(E, images)
        w_mse = jnp.mean(jnp.square(encoded - ws))
        terms = reconstruction_terms(G, lpips, encoded, images)
        loss = cfg.sample_w_weight * w_mse + cfg.sample_mse_weight * terms["mse"]
        if lpips is not None:
            loss = loss + cfg.sample_lpips_weight * terms["lpips"]
        return loss, ({"sample_w_mse": w_mse, **{f"sample_{k}": v for k, v in terms.items()},
                       "sample_loss": loss}, trained)
    return _adam_step(E, opt_state, loss_fn, cfg)
