"""pix2pixHD training: the LSGAN, feature-matching and VGG losses, and one jitted G / D update with Adam.

Follows NVIDIA/pix2pixHD@14b3b3c: `Pix2PixHDModel.forward` (models/pix2pixHD_model.py:152-193), `GANLoss` and
`VGGLoss` (models/networks.py:68-124) and the loss sums of train.py:78-79:

* GAN loss (LSGAN, the default): for each discriminator pass, the mean squared error of its final prediction
  against 1 (real) or 0 (fake), summed over the passes.
* D loss = 0.5 * (loss on the generated image, detached, as fake + loss on the real image as real).
* G loss = GAN(D(fake) as real) + feature matching + VGG, where feature matching is
  sum over passes i and intermediate outputs j (all but the final prediction) of
  (1 / num_D) * (4 / (n_layers + 1)) * L1(D(fake)[i][j], D(real)[i][j] detached) * lambda_feat, and the VGG loss is
  lambda_feat * sum_k w_k * L1(VGG(fake)_k, VGG(real)_k detached) over relu1_1 ... relu5_1 with
  w = (1/32, 1/16, 1/8, 1/4, 1), on the raw [-1, 1] images. L1 is the mean absolute difference.
* Both networks see the encoded input (one-hot labels and instance edges) concatenated with the image.
* Adam(lr 2e-4, betas (0.5, 0.999), eps 1e-8 as torch.optim.Adam). The official loop steps G, then D, both from
  the losses of one forward pass (D's gradient does not see G's new weights), so one step here computes both
  gradients at the current weights and updates both.

Not covered: the linear learning-rate decay of `niter_decay`, `niter_fix_global` (local enhancer only), the image
pool (size 0 by default, a pass-through) and training the feature encoder E (--instance_feat).
"""

import dataclasses
from typing import Any

import jax
import jax.numpy as jnp
import optax

from jaxgan.models import pix2pixhd, vgg19
from jaxgan.nn.split import SplitModel

VGG_WEIGHTS = (1 / 32, 1 / 16, 1 / 8, 1 / 4, 1.0)


@dataclasses.dataclass(frozen=True)
class Pix2PixHDTrainConfig:
    """train_options.py defaults; gan_feat_loss / vgg_loss are the negations of --no_ganFeat_loss / --no_vgg_loss."""

    lr: float = 2e-4
    beta1: float = 0.5
    beta2: float = 0.999
    lambda_feat: float = 10.0
    gan_feat_loss: bool = True
    vgg_loss: bool = True


# ----------------------------------------------------------------------------------------------------------------
# Losses


def l1(a, b):
    return jnp.mean(jnp.abs(a - b))


def lsgan_loss(predictions: list[list], target_is_real: bool):
    """GANLoss(use_lsgan=True) of a multiscale output: sum over passes of mean((final prediction - target)^2)."""
    target = 1.0 if target_is_real else 0.0
    return sum(jnp.mean(jnp.square(per_pass[-1] - target)) for per_pass in predictions)


def feature_matching_loss(pred_fake: list[list], pred_real: list[list], *, n_layers: int, lambda_feat: float):
    """L1 between the discriminator's intermediate outputs on the fake and (detached) real image, weighted by
    1 / num_D and 4 / (n_layers + 1), times lambda_feat; the final predictions are left out."""
    num_d = len(pred_fake)
    weight = (4.0 / (n_layers + 1)) * (1.0 / num_d)
    loss = 0.0
    for fake, real in zip(pred_fake, pred_real):
        for j in range(len(fake) - 1):
            loss = loss + weight * l1(fake[j], jax.lax.stop_gradient(real[j])) * lambda_feat
    return loss


def vgg_loss(V: SplitModel, fake, real, *, lambda_feat: float):
    """lambda_feat * sum_k w_k L1(VGG19(fake)_k, VGG19(real)_k detached), relu1_1 ... relu5_1, raw [-1, 1] input."""
    fake_features = vgg19.vgg19_features(V, fake)
    real_features = vgg19.vgg19_features(V, real)
    loss = 0.0
    for w, f, r in zip(VGG_WEIGHTS, fake_features, real_features):
        loss = loss + w * l1(f, jax.lax.stop_gradient(r))
    return loss * lambda_feat


# ----------------------------------------------------------------------------------------------------------------
# Training state and step


@dataclasses.dataclass(frozen=True)
class TrainState:
    G: SplitModel
    D: SplitModel
    g_opt: Any
    d_opt: Any
    step: Any


jax.tree_util.register_dataclass(TrainState, data_fields=["G", "D", "g_opt", "d_opt", "step"], meta_fields=[])


def optimizer(cfg: Pix2PixHDTrainConfig) -> optax.GradientTransformation:
    return optax.adam(cfg.lr, b1=cfg.beta1, b2=cfg.beta2, eps=1e-8)


def init_train_state(G: SplitModel, D: SplitModel, cfg: Pix2PixHDTrainConfig) -> TrainState:
    opt = optimizer(cfg)
    return TrainState(G=G, D=D, g_opt=opt.init(G.params), d_opt=opt.init(D.params), step=jnp.zeros((), jnp.int32))


def _with_params(model: SplitModel, params) -> SplitModel:
    return dataclasses.replace(model, params=params)


def _check_batch(G: SplitModel, D: SplitModel, batch):
    cfg = G.config
    encoded, real = batch["input"], batch["image"]
    if encoded.shape[-1] != cfg.input_nc or real.shape[-1] != cfg.output_nc or encoded.shape[:3] != real.shape[:3]:
        raise ValueError(f"batch['input'] must be [N, H, W, {cfg.input_nc}] and batch['image'] [N, H, W, "
                         f"{cfg.output_nc}] of the same N, H, W; got {encoded.shape} and {real.shape}")
    if D.config.input_nc != encoded.shape[-1] + real.shape[-1]:
        raise ValueError(f"the discriminator takes {D.config.input_nc} channels, but input + image have "
                         f"{encoded.shape[-1] + real.shape[-1]}")


def discriminator_loss(D: SplitModel, encoded, real, fake):
    """0.5 * (LSGAN(D(input, fake detached), fake) + LSGAN(D(input, real), real)); returns (loss, terms)."""
    pred_fake = pix2pixhd.discriminate(D, jnp.concatenate([encoded, jax.lax.stop_gradient(fake)], axis=-1))
    pred_real = pix2pixhd.discriminate(D, jnp.concatenate([encoded, real], axis=-1))
    terms = {"D_fake": lsgan_loss(pred_fake, False), "D_real": lsgan_loss(pred_real, True)}
    return 0.5 * (terms["D_fake"] + terms["D_real"]), terms


def generator_loss(G: SplitModel, D: SplitModel, V: SplitModel | None, batch: dict, cfg: Pix2PixHDTrainConfig):
    """G_GAN + G_GAN_Feat + G_VGG for batch['input'] [N, H, W, input_nc] (encode_input) and batch['image']
    [N, H, W, output_nc]; returns (loss, terms), terms holding the three (official names) and the images 'fake'."""
    _check_batch(G, D, batch)
    encoded, real = batch["input"], batch["image"]
    fake = pix2pixhd.generate(G, encoded)
    pred_fake = pix2pixhd.discriminate(D, jnp.concatenate([encoded, fake], axis=-1))
    terms = {"G_GAN": lsgan_loss(pred_fake, True), "G_GAN_Feat": jnp.zeros(()), "G_VGG": jnp.zeros(())}
    if cfg.gan_feat_loss:
        if not D.config.get_interm_feat:
            raise ValueError("feature matching needs a discriminator with get_interm_feat=True")
        pred_real = pix2pixhd.discriminate(D, jnp.concatenate([encoded, real], axis=-1))
        terms["G_GAN_Feat"] = feature_matching_loss(pred_fake, pred_real, n_layers=D.config.n_layers,
                                                    lambda_feat=cfg.lambda_feat)
    if cfg.vgg_loss:
        if V is None:
            raise ValueError("the VGG loss needs the VGG19 trunk (convert vgg19-dcbb9e9d.pth with --kind vgg19), "
                             "or vgg_loss=False")
        terms["G_VGG"] = vgg_loss(V, fake, real, lambda_feat=cfg.lambda_feat)
    return terms["G_GAN"] + terms["G_GAN_Feat"] + terms["G_VGG"], {**terms, "fake": fake}


def train_step(state: TrainState, V: SplitModel | None, batch: dict, cfg: Pix2PixHDTrainConfig):
    """One G and one D Adam update from the losses at the current weights; returns (new state, loss terms).

    Jit it with cfg static: `jax.jit(train_step, static_argnames="cfg")`. G's gradient flows through D (D's weights
    fixed), D's only through its own weights (the generated image is detached), as in the official step."""

    def g_objective(g_params):
        return generator_loss(_with_params(state.G, g_params), state.D, V, batch, cfg)

    def d_objective(d_params, fake):
        return discriminator_loss(_with_params(state.D, d_params), batch["input"], batch["image"], fake)

    (g_loss, terms), g_grads = jax.value_and_grad(g_objective, has_aux=True)(state.G.params)
    (d_loss, d_terms), d_grads = jax.value_and_grad(d_objective, has_aux=True)(state.D.params, terms.pop("fake"))
    opt = optimizer(cfg)
    g_updates, g_opt = opt.update(g_grads, state.g_opt, state.G.params)
    d_updates, d_opt = opt.update(d_grads, state.d_opt, state.D.params)
    new_state = TrainState(G=_with_params(state.G, optax.apply_updates(state.G.params, g_updates)),
                           D=_with_params(state.D, optax.apply_updates(state.D.params, d_updates)),
                           g_opt=g_opt, d_opt=d_opt, step=state.step + 1)
    return new_state, {**terms, **d_terms, "G": g_loss, "D": d_loss}
