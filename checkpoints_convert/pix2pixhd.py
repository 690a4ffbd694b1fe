"""pix2pixHD state dicts (`latest_net_G.pth`, `latest_net_D.pth`, `latest_net_E.pth`) -> jaxgan pix2pixHD models.

Follows NVIDIA/pix2pixHD@14b3b3c: `BaseModel.save_network` / `load_network` in `models/base_model.py` (the files:
`network.cpu().state_dict()`, legacy or zip torch.save format, possibly with `running_mean` / `running_var` buffers
on every InstanceNorm layer from PyTorch < 0.4), the `nn.Sequential` layouts of `models/networks.py` (the key
layouts), its `MultiscaleDiscriminator` (keys with and without getIntermFeat) and pix2pixHD issue #159 (a state
dict whose keys carry `netG.` / `netD.` / `netE.` prefixes, as a whole model's state dict has).

Which network a file holds, and its structure, come from the keys and shapes: `scale{i}_layer{j}.*` or
`layer{i}.*` is a MultiscaleDiscriminator; `model.*` with `conv_block` keys a generator, a LocalEnhancer when
`model{n}_1.*` keys exist; `model.*` without residual blocks the feature Encoder (a GlobalGenerator with zero
residual blocks has the same keys: pass net='G' for one). `overrides` replace inferred config fields.

jaxgan's module paths are the PyTorch names, so the key map is the identity on `weight` / `bias`, plus one rule that
drops the running statistics of exactly the InstanceNorm layers the model has (recorded in the notes; they are
never used: `get_norm_layer` builds InstanceNorm2d without running statistics). Like every converter here it is
strict (`checkpoints_convert.keymap`): a key with no place in the
model, a missing tensor or a wrong shape is named in the error. BatchNorm checkpoints (norm 'batch') are refused,
see `jaxgan.models.pix2pixhd`.

The generator's config also records the input encoding (label_nc, no_instance, feat_num; defaults 35, False, 0 as
the official options) that `jaxgan pix2pixhd` builds; it must add up to the input channels of the weights.
"""

import dataclasses
import re
from collections.abc import Mapping

import numpy as np
from flax import nnx

from checkpoints_convert.keymap import ConversionError, KeyRule, fill_model, map_keys
from checkpoints_convert.torch_reader import load_torch_file
from jaxgan.models import pix2pixhd
from jaxgan.models.pix2pixhd import (BATCH_NORM_REFUSAL, Pix2PixHDDiscriminatorConfig, Pix2PixHDEncoderConfig,
                                     Pix2PixHDGeneratorConfig)
from jaxgan.nn.split import SplitModel

NETS = ("G", "D", "E")
PREFIXES = {"netG.": "G", "netD.": "D", "netE.": "E"}
RUNNING_STATS = ("running_mean", "running_var", "num_batches_tracked")
DEFAULT_LABEL_NC = 35  # base_options.py --label_nc
_FLOAT_DTYPES = (np.float16, np.float32)


def _float32(array: np.ndarray) -> np.ndarray:
    return array.astype(np.float32)


def split_nets(state: Mapping[str, np.ndarray], net: str | None = None) -> dict[str, dict]:
    """{'G'|'D'|'E': state dict without prefix}: by `netG.`-style prefixes when the keys have them, else one net
    inferred from the keys (or `net`)."""
    prefixed = [k for k in state if any(k.startswith(p) for p in PREFIXES)]
    if prefixed:
        bare = sorted(k for k in state if k not in prefixed)
        if bare:
            raise ConversionError(f"some keys carry a netG./netD./netE. prefix and others none: {', '.join(bare[:5])}"
                                  + (" ..." if len(bare) > 5 else ""))
        nets: dict[str, dict] = {}
        for key, value in state.items():
            prefix = next(p for p in PREFIXES if key.startswith(p))
            nets.setdefault(PREFIXES[prefix], {})[key[len(prefix):]] = value
        if net is not None:
            if net not in nets:
                raise ConversionError(f"no net{net}. keys in this file (it holds {', '.join(sorted(nets))})")
            nets = {net: nets[net]}
        return nets
    return {net or infer_net(state): dict(state)}


def infer_net(state: Mapping[str, np.ndarray]) -> str:
    keys = list(state)
    if keys and all(re.match(r"(scale\d+_)?layer\d+\.", k) for k in keys):
        return "D"
    if keys and all(re.match(r"model(\d+_[12])?\.", k) for k in keys):
        return "G" if any(".conv_block." in k or re.match(r"model\d+_", k) for k in keys) else "E"
    examples = ", ".join(sorted(keys)[:4]) or "none"
    raise ConversionError(f"not a pix2pixHD generator, discriminator or encoder state dict (keys: {examples})")


def _weights(state) -> dict[str, np.ndarray]:
    """The conv tensors (not running statistics), for inferring the structure."""
    return {k: v for k, v in state.items() if k.rsplit(".", 1)[-1] in ("weight", "bias")}


def _refuse_batch_norm(state):
    """A BatchNorm layer has a 1-D `weight` beside its running statistics; an InstanceNorm(affine=False) has none."""
    for key in state:
        module, _, leaf = key.rpartition(".")
        if leaf == "running_mean" and np.ndim(state.get(f"{module}.weight")) == 1:
            raise ConversionError(f"{module} is a BatchNorm layer: {BATCH_NORM_REFUSAL}")


def _get(weights, key) -> np.ndarray:
    if key not in weights:
        raise ConversionError(f"missing {key} (needed to infer the structure)")
    return weights[key]


def _sequential_convs(weights, prefix: str) -> dict[int, tuple]:
    """{index: weight shape} of the plain convs (not residual blocks) of the Sequential at `prefix`."""
    found = {}
    for key, value in weights.items():
        m = re.fullmatch(rf"{re.escape(prefix)}\.(\d+)\.weight", key)
        if m and np.ndim(value) == 4:
            found[int(m.group(1))] = value.shape
    return found


def _residual_blocks(weights, prefix: str) -> set[int]:
    return {int(m.group(1)) for k in weights if (m := re.fullmatch(rf"{re.escape(prefix)}\.(\d+)\.conv_block\..+", k))}


def infer_generator(weights) -> dict:
    """GlobalGenerator / LocalEnhancer constructor arguments (models/networks.py) from the conv shapes."""
    front = _get(weights, "model.1.weight")
    global_convs = _sequential_convs(weights, "model")
    n_down = sum(1 for s in global_convs.values() if s[2:] == (3, 3)) // 2  # as many stride-2 convs as transposed
    n_le = max((int(m.group(1)) for k in weights if (m := re.match(r"model(\d+)_1\.", k))), default=0)
    args = {"input_nc": int(front.shape[1]), "n_downsample_global": n_down,
            "n_blocks_global": len(_residual_blocks(weights, "model"))}
    if n_le == 0:
        head = global_convs[max(global_convs)]
        args.update(netG="global", ngf=int(front.shape[0]), output_nc=int(head[0]))
    else:
        local_head = _sequential_convs(weights, f"model{n_le}_2")
        head = local_head[max(local_head)] if local_head else (0,)
        args.update(netG="local", n_local_enhancers=n_le, ngf=int(_get(weights, f"model{n_le}_1.1.weight").shape[0]),
                    n_blocks_local=len(_residual_blocks(weights, f"model{n_le}_2")), output_nc=int(head[0]))
    return args


def infer_discriminator(weights) -> dict:
    interm = any(k.startswith("scale") for k in weights)
    if interm:
        index = [(int(m.group(1)), int(m.group(2))) for k in weights
                 if (m := re.fullmatch(r"scale(\d+)_layer(\d+)\.0\.weight", k))]
        first = _get(weights, "scale0_layer0.0.weight")
        num_d, groups = max(i for i, _ in index) + 1, max(j for _, j in index) + 1
    else:
        index = [(int(m.group(1)), int(m.group(2))) for k in weights
                 if (m := re.fullmatch(r"layer(\d+)\.(\d+)\.weight", k))]
        first = _get(weights, "layer0.0.weight")
        num_d, groups = max(i for i, _ in index) + 1, sum(1 for i, _ in index if i == 0)
    return {"input_nc": int(first.shape[1]), "ndf": int(first.shape[0]), "n_layers": groups - 2, "num_D": num_d,
            "get_interm_feat": interm}


def infer_encoder(weights) -> dict:
    front = _get(weights, "model.1.weight")
    convs = _sequential_convs(weights, "model")
    return {"input_nc": int(front.shape[1]), "ngf": int(front.shape[0]), "output_nc": int(convs[max(convs)][0]),
            "n_downsampling": sum(1 for s in convs.values() if s[2:] == (3, 3)) // 2}


def key_map(model: SplitModel) -> list[KeyRule]:
    """Identity on weights and biases; the running statistics of the model's InstanceNorm layers are dropped."""
    norms = [".".join(map(str, path)) for path, node in nnx.iter_graph(model.module())
             if isinstance(node, pix2pixhd.InstanceNorm2d)]
    rules = [KeyRule(r"(.+)\.(weight|bias)", r"\1.\2", _float32)]
    if norms:
        rules.append(KeyRule(rf"({'|'.join(map(re.escape, norms))})\.({'|'.join(RUNNING_STATS)})", None))
    return rules


_CONFIGS = {"G": Pix2PixHDGeneratorConfig, "D": Pix2PixHDDiscriminatorConfig, "E": Pix2PixHDEncoderConfig}
_INFER = {"G": infer_generator, "D": infer_discriminator, "E": infer_encoder}


def _config(net: str, inferred: dict, overrides: Mapping | None):
    cls = _CONFIGS[net]
    fields = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(overrides or {}) - fields)
    if unknown:
        raise ConversionError(f"unknown {cls.__name__} fields in the overrides: {', '.join(unknown)}")
    try:
        return cls(**{**inferred, **(overrides or {})})
    except ValueError as e:
        hint = (" (give the encoding with --label-nc, --no-instance and --feat-num)"
                if net == "G" and "input encoding" in str(e) else "")
        raise ConversionError(f"{net}: {e}{hint}") from None


def convert_state_dict(state: Mapping[str, np.ndarray], net: str, *, overrides: Mapping | None = None):
    """One network's state dict (no prefix) -> (SplitModel, ignored running-stat keys)."""
    _refuse_batch_norm(state)
    cfg = _config(net, _INFER[net](_weights(state)), overrides)
    abstract = pix2pixhd.abstract_model(cfg)
    tensors = map_keys(state, key_map(abstract))
    model = fill_model(abstract, tensors)
    ignored = sorted(k for k in state if k.rsplit(".", 1)[-1] in RUNNING_STATS)
    return model, ignored


def _state_dict(path) -> dict:
    data = load_torch_file(path)
    if not isinstance(data, dict) or not all(isinstance(k, str) for k in data):
        raise ConversionError(f"expected a state dict, found {type(data).__name__}")
    bad = sorted(k for k, v in data.items() if not isinstance(v, np.ndarray))
    if bad:
        raise ConversionError(f"expected a state dict of tensors; not tensors: {', '.join(bad)}")
    bad = sorted(f"{k} ({v.dtype})" for k, v in data.items()
                 if v.dtype not in _FLOAT_DTYPES and k.rsplit(".", 1)[-1] not in RUNNING_STATS)
    if bad:
        raise ConversionError(f"expected float16 or float32 weights; found {', '.join(bad)}")
    return dict(data)


def convert_pix2pixhd(path, *, label_nc: int | None = None, no_instance: bool | None = None,
                      feat_num: int | None = None, net: str | None = None,
                      overrides: Mapping[str, Mapping] | None = None) -> tuple[dict[str, SplitModel], dict]:
    """Read a pix2pixHD `.pth`; returns ({'G'|'D'|'E': model}, notes) for `jaxgan.checkpoint.save_checkpoint`.

    label_nc / no_instance / feat_num: the generator's input encoding (defaults 35 / False / 0); refused when the
    file holds no generator. net: force 'G', 'D' or 'E' (or pick one net of a prefixed file). overrides:
    {net: {config field: value}} over what the keys imply. Raises CheckpointError or ConversionError.
    """
    if net is not None and net not in NETS:
        raise ValueError(f"net must be one of {NETS}, got {net!r}")
    state = _state_dict(path)
    nets = split_nets(state, net)
    encoding = {k: v for k, v in (("label_nc", label_nc), ("no_instance", no_instance), ("feat_num", feat_num))
                if v is not None}
    if encoding and "G" not in nets:
        raise ConversionError(f"{', '.join(encoding)} describe a generator's input, but this file holds "
                              f"{', '.join(f'net{n}' for n in sorted(nets))}")
    unknown = sorted(set(overrides or {}) - set(nets))
    if unknown:
        raise ConversionError(f"overrides for nets the file does not hold: {', '.join(unknown)}")
    models, ignored = {}, {}
    for name in sorted(nets):
        extra = dict((overrides or {}).get(name, {}))
        if name == "G":
            extra = {"label_nc": DEFAULT_LABEL_NC, **encoding, **extra}
        models[name], ignored[name] = convert_state_dict(nets[name], name, overrides=extra)
    prefixed = any(k.startswith(tuple(PREFIXES)) for k in state)
    notes = {"format": "pix2pixhd state dict", "nets": sorted(models), "prefixed": prefixed,
             "ignored_keys": [(f"net{n}." if prefixed else "") + k for n in sorted(ignored) for k in ignored[n]]}
    return models, notes
