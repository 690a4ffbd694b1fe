"""rosinality/stylegan2-pytorch `.pt` checkpoints -> jaxgan models.

Follows rosinality/stylegan2-pytorch@bef283a (`convert_weight.py`; `Generator`, `Discriminator` in `model.py`):
the `g_ema` state dict maps 1:1 onto the stylegan2-ada layout with only
reshapes (rosinality's EqualLinear / ModulatedConv2d / ToRGB / up-conv are numerically the official layers), and
`latent_avg` is the truncation centre `mapping.w_avg`. The architecture is read from tensor shapes: rosinality
networks are unconditional 'skip' generators and 'resnet' discriminators without conv clamping, and their channel
counts need not follow the `channel_base // res` rule. `d`, when present, is converted as well; `g` (the training
copy) and the optimiser states are not needed for inference.
"""

import re

import jax
import jax.numpy as jnp
import numpy as np

from checkpoints_convert.keymap import ConversionError, KeyRule, fill_model, map_keys
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


def _synthesis_target(part: str):
    """convs.{j}: block 2**(j//2 + 3), conv0 for even j, conv1 for odd j."""
    def target(m: re.Match) -> str:
        j = int(m.group(1))
        return f"synthesis.b{2 ** (j // 2 + 3)}.conv{j % 2}.{part.format(*m.groups()[1:])}"
    return target


def _noise_target(m: re.Match) -> str:
    k = int(m.group(1))
    if k == 0:
        return "synthesis.b4.conv1.noise_const"
    return f"synthesis.b{2 ** ((k + 1) // 2 + 2)}.conv{(k + 1) % 2}.noise_const"


def generator_key_map() -> list[KeyRule]:
    squeeze0 = lambda a: a[0]  # noqa: E731  (rosinality keeps a leading batch axis of 1)
    flat = lambda a: a.reshape(-1)  # noqa: E731
    scalar = lambda a: a.reshape(())  # noqa: E731
    plane = lambda a: a[0, 0]  # noqa: E731
    return [
        KeyRule(r"style\.(\d+)\.(weight|bias)", lambda m: f"mapping.fc{int(m.group(1)) - 1}.{m.group(2)}"),
        KeyRule(r"input\.input", "synthesis.b4.const", squeeze0),
        KeyRule(r"conv1\.conv\.weight", "synthesis.b4.conv1.weight", squeeze0),
        KeyRule(r"conv1\.conv\.modulation\.(weight|bias)", r"synthesis.b4.conv1.affine.\1"),
        KeyRule(r"conv1\.noise\.weight", "synthesis.b4.conv1.noise_strength", scalar),
        KeyRule(r"conv1\.activate\.bias", "synthesis.b4.conv1.bias"),
        KeyRule(r"to_rgb1\.conv\.weight", "synthesis.b4.torgb.weight", squeeze0),
        KeyRule(r"to_rgb1\.conv\.modulation\.(weight|bias)", r"synthesis.b4.torgb.affine.\1"),
        KeyRule(r"to_rgb1\.bias", "synthesis.b4.torgb.bias", flat),
        KeyRule(r"convs\.(\d+)\.conv\.weight", _synthesis_target("weight"), squeeze0),
        KeyRule(r"convs\.(\d+)\.conv\.modulation\.(weight|bias)", _synthesis_target("affine.{0}")),
        KeyRule(r"convs\.(\d+)\.noise\.weight", _synthesis_target("noise_strength"), scalar),
        KeyRule(r"convs\.(\d+)\.activate\.bias", _synthesis_target("bias")),
        KeyRule(r"convs\.(\d+)\.conv\.blur\.kernel", None, check=_is_fir(4), describe="[1,3,3,1] blur x4"),
        KeyRule(r"to_rgbs\.(\d+)\.conv\.weight", lambda m: f"synthesis.b{2 ** (int(m.group(1)) + 3)}.torgb.weight",
                squeeze0),
        KeyRule(r"to_rgbs\.(\d+)\.conv\.modulation\.(weight|bias)",
                lambda m: f"synthesis.b{2 ** (int(m.group(1)) + 3)}.torgb.affine.{m.group(2)}"),
        KeyRule(r"to_rgbs\.(\d+)\.bias", lambda m: f"synthesis.b{2 ** (int(m.group(1)) + 3)}.torgb.bias", flat),
        KeyRule(r"to_rgbs\.(\d+)\.upsample\.kernel", None, check=_is_fir(4), describe="[1,3,3,1] upsample x4"),
        KeyRule(r"noises\.noise_(\d+)", _noise_target, plane),
    ]


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
    data = load_torch_file(path)
    if not isinstance(data, dict) or "g_ema" not in data:
        found = sorted(map(str, data)) if isinstance(data, dict) else type(data).__name__
        raise ConversionError(f"{path}: expected a rosinality checkpoint with 'g_ema', found {found}")
    args = data.get("args")  # argparse.Namespace in training checkpoints; some tools save it as a dict
    lr_mlp = float((args.get("lr_mlp") if isinstance(args, dict) else getattr(args, "lr_mlp", None)) or 0.01)
    g = dict(data["g_ema"])
    cfg = generator_config(g, lr_mlp)
    tensors = map_keys(g, generator_key_map())
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
