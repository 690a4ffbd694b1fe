"""Export a jaxgan StyleGAN2 generator back to the PyTorch tools: its state dict under the official names and layouts.

Two layouts, each written through the key declaration its converter reads with (one source of truth):

* 'stylegan2-ada': `Generator.state_dict()` of `training/networks.py` (NVlabs/stylegan2-ada-pytorch@d72cc7d; the
  same classes as DragGAN's `training/networks_stylegan2.py`), buffers included (`mapping.w_avg`, every
  `resample_filter`, the `noise_const`s), in its key order (`stylegan2_pkl.generator_key_pairs`), for
  `G.load_state_dict(...)` into an official generator built with the same constructor arguments.
* 'rosinality': rosinality/stylegan2-pytorch@bef283a `Generator.state_dict()` (model.py) saved as its checkpoints
  are, `{'g_ema': state dict, 'latent_avg': w_avg}` (`rosinality.rosinality_checkpoint`); what it cannot represent
  (conditioning, non-skip architectures, a mapping lr multiplier other than 0.01, ...) is refused.

Two formats: 'safetensors' (`safetensors.numpy`; the layout and the exact jaxgan config in `__metadata__`, so
`jaxgan convert` restores the config exactly) and 'pt', a torch.save zip archive written without torch
(`torch_writer`) that `torch.load(path, weights_only=True)` reads. A state dict has no room for a config: `jaxgan
convert` of a `.pt` reads it from the tensor shapes plus the official constructor defaults, and `export` returns a
note naming each setting of the generator that a `.pt` therefore loses. Outputs are written to a temporary name and
renamed (`jaxgan.files.atomic_write`): an existing OUT is refused and a failed export leaves nothing.
"""

import collections
import dataclasses
import json
from pathlib import Path

from checkpoints_convert.formats import EXPORT_FORMATS, EXPORT_LAYOUTS
from checkpoints_convert.keymap import ConversionError, unmap_pairs
from checkpoints_convert.rosinality import generator_config as rosinality_generator_config
from checkpoints_convert.rosinality import rosinality_checkpoint
from checkpoints_convert.safetensors_file import LATENT_AVG, METADATA_FORMAT, ROSINALITY_PREFIX
from checkpoints_convert.stylegan2_pkl import generator_key_pairs, state_dict_generator_config
from checkpoints_convert.torch_writer import write_torch_file
from jaxgan.checkpoint import config_to_dict, load_model
from jaxgan.files import atomic_write
from jaxgan.models.stylegan2 import GeneratorConfig, channels_by_resolution
from jaxgan.nn.split import SplitModel


def official_state(G: SplitModel, layout: str) -> dict:
    """What the official code holds for `G`: an OrderedDict state dict (stylegan2-ada) or rosinality's checkpoint
    dict {'g_ema': OrderedDict, 'latent_avg': array}; float32 numpy arrays."""
    if layout == "stylegan2-ada":
        return collections.OrderedDict(unmap_pairs(G, generator_key_pairs(G.config)))
    if layout == "rosinality":
        checkpoint = rosinality_checkpoint(G)
        return {"g_ema": collections.OrderedDict(checkpoint["g_ema"]), "latent_avg": checkpoint["latent_avg"]}
    raise ValueError(f"layout must be one of {EXPORT_LAYOUTS}, got {layout!r}")


def flat_tensors(state: dict, layout: str) -> dict:
    """The one flat table a safetensors file holds: rosinality's nested dict joined with dots."""
    if layout == "rosinality":
        return {**{ROSINALITY_PREFIX + key: v for key, v in state["g_ema"].items()}, LATENT_AVG: state["latent_avg"]}
    return dict(state)


def settings_lost_in_pt(cfg: GeneratorConfig, state: dict, layout: str) -> list[str]:
    """The settings of `cfg` that `jaxgan convert` of the `.pt` of `state` will not restore (it reads the config
    from the shapes and takes the official defaults for the rest), as 'name=value' strings."""
    if layout == "rosinality":
        inferred = rosinality_generator_config(dict(state["g_ema"]), 0.01)
    else:
        inferred = state_dict_generator_config(state)
    return [f"{f.name}={getattr(cfg, f.name)!r}" for f in dataclasses.fields(cfg)
            if getattr(cfg, f.name) != getattr(inferred, f.name)]


def _channel_rule(cfg: GeneratorConfig) -> tuple[int, int] | None:
    """(channel_base, channel_max) of the official `min(channel_base // res, channel_max)` rule giving cfg.channels,
    or None when no pair does."""
    channel_max = max(cfg.channels)
    candidates = [c * res for c, res in zip(cfg.channels, cfg.block_resolutions) if c < channel_max]
    for base in candidates or [channel_max * cfg.img_resolution]:
        if channels_by_resolution(cfg.img_resolution, base, channel_max) == cfg.channels:
            return base, channel_max
    return None


def export_generator(G: SplitModel, out, *, fmt: str, layout: str) -> tuple[Path, list[str]]:
    """Write generator `G` to the new file `out` in format `fmt` and layout `layout`; returns (absolute path, notes
    for the user). Raises ConversionError when the layout cannot represent `G`, FileExistsError if `out` exists."""
    if fmt not in EXPORT_FORMATS:
        raise ValueError(f"format must be one of {EXPORT_FORMATS}, got {fmt!r}")
    if layout not in EXPORT_LAYOUTS:
        raise ValueError(f"layout must be one of {EXPORT_LAYOUTS}, got {layout!r}")
    out = Path(out).resolve()
    if out.exists():
        raise FileExistsError(f"{out} already exists; choose a new destination or remove it first")
    if not out.parent.is_dir():
        raise ValueError(f"the folder {out.parent} does not exist")
    state = official_state(G, layout)
    notes = []
    if layout == "stylegan2-ada" and _channel_rule(G.config) is None:
        notes.append(f"the channel counts {list(G.config.channels)} follow no min(channel_base // res, channel_max) "
                     "rule: build the official Generator with them by hand")
    if fmt == "pt":
        lost = settings_lost_in_pt(G.config, state, layout)
        if lost:
            notes.append(f"a .pt state dict cannot hold {', '.join(lost)}; `jaxgan convert` of it will assume the "
                         "official defaults (export --format safetensors keeps the exact config)")
        atomic_write(out, lambda f: write_torch_file(f, state, out.stem or "archive"))
    else:
        from safetensors.numpy import save
        metadata = {"format": METADATA_FORMAT, "layout": layout, "model": json.dumps(config_to_dict(G.config))}
        data = save(flat_tensors(state, layout), metadata=metadata)
        atomic_write(out, lambda f: f.write(data))
    return out, notes


def export_checkpoint(ckpt, out, *, fmt: str, layout: str = "stylegan2-ada",
                      model: str | None = None) -> tuple[Path, list[str]]:
    """Export the StyleGAN2 generator `model` (default: the first one stored, `G` in converted checkpoints) of the
    jaxgan checkpoint `ckpt` to `out`; see `export_generator`."""
    if Path(out).exists():  # before the (slow) restore
        raise FileExistsError(f"{Path(out).resolve()} already exists; choose a new destination or remove it first")
    if layout not in EXPORT_LAYOUTS:
        raise ValueError(f"layout must be one of {EXPORT_LAYOUTS}, got {layout!r}")
    G = load_model(ckpt, "stylegan2-generator", name=model, hint="only StyleGAN2 generators can be exported")
    try:
        return export_generator(G, out, fmt=fmt, layout=layout)
    except ConversionError as e:
        raise ConversionError(f"{Path(ckpt).name}: {e}") from None
