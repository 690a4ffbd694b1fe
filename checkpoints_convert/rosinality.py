"""rosinality/stylegan2-pytorch `.pt` checkpoints -> jaxgan models.

Follows rosinality/stylegan2-pytorch@bef283a (`convert_weight.py`; `Generator`, `Discriminator` in `model.py`): the
`g_ema` state dict maps 1:1 onto the stylegan2-ada layout with only reshapes (rosinality's EqualLinear /
ModulatedConv2d / ToRGB / up-conv are numerically the official layers), and `latent_avg` is the truncation centre
`mapping.w_avg`. The generator's map is declared key by key (`generator_key_pairs`), and `rosinality_checkpoint`
writes a generator back through the same declaration. The architecture is read from tensor shapes: rosinality
networks are unconditional 'skip' generators and 'resnet' discriminators without conv clamping, and their channel
counts need not follow the `channel_base // res` rule. `d`, when present, is converted as well; `g` (the training
copy) and the optimiser states are not needed for inference.
"""

import re

import jax
import jax.numpy as jnp
import numpy as np

from checkpoints_convert.keymap import (ConversionError, KeyPair, KeyRule, fill_model, leaf_shapes, map_keys, map_pairs,
                                        unmap_pairs)
from checkpoints_convert.torch_reader import load_torch_file
from jaxgan.models import stylegan2
from jaxgan.models.stylegan2 import DiscriminatorConfig, GeneratorConfig, abstract_model
from jaxgan.nn.split import SplitModel
from jaxgan.ops.upfirdn2d import setup_filter

# rosinality's Blur / Upsample kernels: make_kernel([1,3,3,1]) (normalised outer product), times factor**2 = 4 on
# the upsampling paths. Anything else is a custom blur_kernel, which the config cannot express yet.
_FIR = setup_filter((1, 3, 3, 1))
W_AVG_SAMPLES = 10_000


def _is_fir(scale: float):
    return lambda a: a.shape == _FIR.shape and np.allclose(a, _FIR * scale)


def _count(keys, pattern: str) -> int:
    return sum(1 for k in keys if re.fullmatch(pattern, k))


def generator_config(g: dict, lr_mlp: float) -> GeneratorConfig:
    try:
        num_upsampling_blocks = _count(g, r"to_rgbs\.\d+\.bias")
        resolutions = tuple(2 ** i for i in range(2, num_upsampling_blocks + 3))
        channels = (g["input.input"].shape[1],) + tuple(
            g[f"convs.{2 * i}.conv.weight"].shape[1] for i in range(num_upsampling_blocks))
        style_dim = g["style.1.weight"].shape[1]
        return GeneratorConfig(z_dim=style_dim, c_dim=0, w_dim=style_dim, img_resolution=resolutions[-1],
                               img_channels=g["to_rgb1.conv.weight"].shape[1], channels=channels,
                               mapping_layers=_count(g, r"style\.\d+\.weight"), mapping_lr_multiplier=lr_mlp)
    except KeyError as e:
        raise ConversionError(f"g_ema lacks {e.args[0]!r}: not a rosinality StyleGAN2 generator") from None


def generator_key_pairs(cfg: GeneratorConfig) -> list[KeyPair]:
    """rosinality's `Generator.state_dict()` for `cfg`, key by key in its order: `style.{1..n}` (index 0 is the
    PixelNorm), `input`, `conv1`, `to_rgb1`, `convs.{j}` (block 2**(j//2 + 3), conv0 for even j), `to_rgbs.{i}`
    (block 2**(i + 3)), `noises.noise_{k}`. Its layers keep a leading batch axis of 1 (`ModulatedConv2d.weight`
    [1, O, I, k, k], `ConstantInput` [1, C, 4, 4], `ToRGB.bias` [1, 3, 1, 1], noise buffers [1, 1, R, R],
    `NoiseInjection.weight` [1]); the Blur / Upsample kernels are make_kernel([1,3,3,1]) x 4 (factor**2)."""
    def lead(shape):  # [1, *shape]
        return (1, *shape)

    def modulated(source, target):
        return [KeyPair(f"{source}.conv.weight", f"{target}.weight", lead),
                KeyPair(f"{source}.conv.modulation.weight", f"{target}.affine.weight"),
                KeyPair(f"{source}.conv.modulation.bias", f"{target}.affine.bias")]

    def styled(source, target, upsample):
        weight, *modulation = modulated(source, target)
        blur = [KeyPair(f"{source}.conv.blur.kernel", None, constant=_FIR * 4, describe="[1,3,3,1] blur x4")]
        return ([weight] + blur * upsample + modulation
                + [KeyPair(f"{source}.noise.weight", f"{target}.noise_strength", lambda s: (1,)),
                   KeyPair(f"{source}.activate.bias", f"{target}.bias")])

    def to_rgb(source, target, upsample):
        return ([KeyPair(f"{source}.bias", f"{target}.bias", lambda s: (1, s[0], 1, 1))]
                + [KeyPair(f"{source}.upsample.kernel", None, constant=_FIR * 4, describe="[1,3,3,1] upsample x4")]
                * upsample + modulated(source, target))

    pairs = [KeyPair(f"style.{i + 1}.{p}", f"mapping.fc{i}.{p}")
             for i in range(cfg.mapping_layers) for p in ("weight", "bias")]
    pairs += [KeyPair("input.input", "synthesis.b4.const", lead)]
    pairs += styled("conv1", "synthesis.b4.conv1", False) + to_rgb("to_rgb1", "synthesis.b4.torgb", False)
    upsampling = cfg.block_resolutions[1:]
    for i, res in enumerate(upsampling):
        pairs += styled(f"convs.{2 * i}", f"synthesis.b{res}.conv0", True)
        pairs += styled(f"convs.{2 * i + 1}", f"synthesis.b{res}.conv1", False)
    for i, res in enumerate(upsampling):
        pairs += to_rgb(f"to_rgbs.{i}", f"synthesis.b{res}.torgb", True)
    noises = ["synthesis.b4.conv1"] + [f"synthesis.b{res}.conv{k}" for res in upsampling for k in (0, 1)]
    pairs += [KeyPair(f"noises.noise_{k}", f"{layer}.noise_const", lambda s: (1, 1, *s))
              for k, layer in enumerate(noises)]
    return pairs


def unsupported_settings(cfg: GeneratorConfig) -> list[str]:
    """What rosinality's `Generator` (model.py) cannot hold of `cfg`: it is unconditional, 'skip', with RGB output,
    z = w = style_dim in every mapping layer, noise inputs everywhere, no conv clamping, the [1,3,3,1] blur the
    converter reads back, and `lr_mlp` 0.01 (train.py never passes another); `latent_avg` is the truncation centre."""
    wanted = [("c_dim", 0), ("architecture", "skip"), ("img_channels", 3), ("z_dim", cfg.w_dim),
              ("conv_clamp", None), ("mapping_lr_multiplier", 0.01), ("resample_filter", (1, 3, 3, 1)),
              ("use_noise", True), ("activation", "lrelu")]
    problems = [f"{name}={getattr(cfg, name)!r} (only {value!r})" for name, value in wanted
                if getattr(cfg, name) != value]
    if cfg.layer_features not in (None, cfg.w_dim):
        problems.append(f"layer_features={cfg.layer_features!r} (only w_dim)")
    if cfg.w_avg_beta is None:
        problems.append("no mapping.w_avg (latent_avg)")
    return problems


def rosinality_checkpoint(G: SplitModel) -> dict:
    """{'g_ema': state dict, 'latent_avg': w_avg}: a jaxgan generator as rosinality's checkpoints hold it (the
    inverse of `convert_rosinality` through the same `generator_key_pairs`). Raises ConversionError for what
    rosinality cannot represent (`unsupported_settings`)."""
    problems = unsupported_settings(G.config)
    if problems:
        raise ConversionError(f"rosinality's Generator cannot represent this generator: {', '.join(problems)}; "
                              "export it with --layout stylegan2-ada")
    g_ema = unmap_pairs(G, generator_key_pairs(G.config), outside=("mapping.w_avg",))
    return {"g_ema": g_ema, "latent_avg": np.asarray(G.buffers["mapping"]["w_avg"][...], np.float32)}


def discriminator_config(d: dict) -> DiscriminatorConfig:
    try:
        num_blocks = _count(d, r"convs\.\d+\.conv1\.0\.weight")
        img_resolution = 2 ** (num_blocks + 2)
        # channels[res]: fromrgb gives the top resolution; block i (at res R / 2**(i-1)) outputs res / 2.
        by_res = {img_resolution: d["convs.0.0.weight"].shape[0]}
        for i in range(1, num_blocks + 1):
            by_res[img_resolution // 2 ** i] = d[f"convs.{i}.conv2.1.weight"].shape[0]
        return DiscriminatorConfig(c_dim=0, img_resolution=img_resolution, img_channels=d["convs.0.0.weight"].shape[1],
                                   channels=tuple(by_res[2 ** k] for k in range(2, num_blocks + 3)))
    except KeyError as e:
        raise ConversionError(f"d lacks {e.args[0]!r}: not a rosinality StyleGAN2 discriminator") from None


def discriminator_key_map(img_resolution: int) -> list[KeyRule]:
    def block(part: str):
        return lambda m: f"b{img_resolution // 2 ** (int(m.group(1)) - 1)}.{part}"
    return [
        KeyRule(r"convs\.0\.0\.weight", f"b{img_resolution}.fromrgb.weight"),
        KeyRule(r"convs\.0\.1\.bias", f"b{img_resolution}.fromrgb.bias"),
        KeyRule(r"convs\.(\d+)\.conv1\.0\.weight", block("conv0.weight")),
        KeyRule(r"convs\.(\d+)\.conv1\.1\.bias", block("conv0.bias")),
        KeyRule(r"convs\.(\d+)\.conv2\.1\.weight", block("conv1.weight")),
        KeyRule(r"convs\.(\d+)\.conv2\.2\.bias", block("conv1.bias")),
        KeyRule(r"convs\.(\d+)\.skip\.1\.weight", block("skip.weight")),
        KeyRule(r"convs\.(\d+)\.(conv2|skip)\.0\.kernel", None, check=_is_fir(1), describe="[1,3,3,1] blur"),
        KeyRule(r"final_conv\.0\.weight", "b4.conv.weight"),
        KeyRule(r"final_conv\.1\.bias", "b4.conv.bias"),
        KeyRule(r"final_linear\.0\.(weight|bias)", r"b4.fc.\1"),
        KeyRule(r"final_linear\.1\.(weight|bias)", r"b4.out.\1"),
    ]


def estimate_w_avg(G: SplitModel, num_samples: int = W_AVG_SAMPLES, seed: int = 0) -> np.ndarray:
    """Mean of mapping(z) over seeded z ~ N(0, I), for checkpoints without `latent_avg`."""
    z = jax.random.normal(jax.random.key(seed), (num_samples, G.config.z_dim))
    return np.asarray(jnp.mean(stylegan2.mapping(G, z)[:, 0], axis=0))


def convert_rosinality(path) -> tuple[dict[str, SplitModel], dict]:
    """Read a rosinality checkpoint file; returns ({'G': g_ema, 'D': d if present}, notes)."""
    return convert_rosinality_data(load_torch_file(path), path)


def convert_rosinality_data(data, path, cfg: GeneratorConfig | None = None) -> tuple[dict[str, SplitModel], dict]:
    """A loaded rosinality checkpoint ({'g_ema', 'latent_avg', ...}) -> models; `cfg` None: read from the shapes."""
    if not isinstance(data, dict) or "g_ema" not in data:
        found = sorted(map(str, data)) if isinstance(data, dict) else type(data).__name__
        raise ConversionError(f"{path}: expected a rosinality checkpoint with 'g_ema', found {found}")
    args = data.get("args")  # argparse.Namespace in training checkpoints; some tools save it as a dict
    lr_mlp = float((args.get("lr_mlp") if isinstance(args, dict) else getattr(args, "lr_mlp", None)) or 0.01)
    g = dict(data["g_ema"])
    cfg = generator_config(g, lr_mlp) if cfg is None else cfg
    tensors = map_pairs(g, generator_key_pairs(cfg), leaf_shapes(abstract_model(cfg)))
    notes = {"format": "rosinality-pt", "mapping_lr_multiplier": lr_mlp,
             "ignored_entries": sorted(str(k) for k in data if k not in ("g_ema", "latent_avg", "d"))}
    if data.get("latent_avg") is not None:
        tensors["mapping.w_avg"] = np.asarray(data["latent_avg"]).reshape(-1)
        notes["w_avg"] = "latent_avg"
    else:
        # Training checkpoints carry no latent_avg; rosinality's generate.py samples a mean at run time instead.
        tensors["mapping.w_avg"] = np.zeros((cfg.w_dim,), np.float32)
        notes["w_avg"] = f"estimated: mean of mapping(z) over {W_AVG_SAMPLES} z from jax.random.key(0)"
    G = fill_model(abstract_model(cfg), tensors)
    if data.get("latent_avg") is None:
        G = fill_model(abstract_model(cfg), {**tensors, "mapping.w_avg": estimate_w_avg(G)})
    models = {"G": G}
    if data.get("d") is not None:
        d = dict(data["d"])
        d_cfg = discriminator_config(d)
        models["D"] = fill_model(abstract_model(d_cfg), map_keys(d, discriminator_key_map(d_cfg.img_resolution)))
    return models, notes
