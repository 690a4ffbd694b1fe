"""stylegan2-ada-pytorch, stylegan3-repo (StyleGAN2 networks) and DragGAN network pickles -> jaxgan models.

Follows the snapshot pickles of stylegan2-ada-pytorch (`training/training_loop.py`, `torch_utils/persistence.py`;
NVlabs/stylegan2-ada-pytorch@d72cc7d): the pickle is read by `torch_reader.load_network_pickle`, which never runs
the embedded module source; the architecture comes from each network's pickled constructor arguments (`init_kwargs`,
kept by `persistent_class`), the weights from its state dict through the identity key map of the
`training/networks.py` parameter and buffer names (jaxgan names its modules after the PyTorch ones). The generator's
map is declared key by key (`generator_key_pairs`, in the order of the official `state_dict()`), so that
`checkpoints_convert.export` writes it back with the same declaration. A bare generator state dict (what `jaxgan
export --layout stylegan2-ada` writes, or `G.state_dict()` saved by hand) carries no constructor arguments:
`state_dict_generator_config` reads what the tensor shapes and the keys present tell, and takes the rest from the
defaults of `Generator.__init__` / `MappingNetwork.__init__` / `SynthesisNetwork.__init__` in `training/networks.py`
(mapping `lr_multiplier` 0.01, `conv_clamp` None, `w_avg_beta` 0.995, `activation` 'lrelu', resample filter
[1,3,3,1], checked against the stored `resample_filter` buffers). `G_ema` is converted for generation and `D` when
present; the training copy `G` and `augment_pipe` are not needed for inference and are only recorded. StyleGAN3
(`networks_stylegan3`) generators, recognised by their Fourier-feature input layer, convert through
`checkpoints_convert.stylegan3_pkl`; their snapshots' discriminators are StyleGAN2's and convert here.
"""

import re

import numpy as np

from checkpoints_convert.keymap import ConversionError, KeyPair, KeyRule, fill_model, leaf_shapes, map_keys, map_pairs
from checkpoints_convert.stylegan3_pkl import convert_generator as convert_stylegan3_generator
from checkpoints_convert.stylegan3_pkl import is_stylegan3_state_dict
from checkpoints_convert.torch_reader import PersistentObject, load_network_pickle, load_torch_file
from jaxgan.models.stylegan2 import DiscriminatorConfig, GeneratorConfig, abstract_model, channels_by_resolution
from jaxgan.nn.split import SplitModel
from jaxgan.ops.upfirdn2d import setup_filter

# Constructor arguments that only select the official fp16 / memory-format execution path, or training-only
# behaviour; jaxgan computes in float32 (as `force_fp32=True`), so they do not change the numbers compared against.
_EXECUTION_ONLY = {"num_fp16_res", "fp16_channels_last", "channels_last", "fused_modconv_default", "freeze_layers",
                   "w_avg_beta"}
_SYNTHESIS_KEYS = {"channel_base", "channel_max", "conv_clamp", "architecture", "resample_filter", "use_noise",
                   "activation", "kernel_size"} | _EXECUTION_ONLY
_MAPPING_KEYS = {"num_layers", "embed_features", "layer_features", "activation", "lr_multiplier"} | _EXECUTION_ONLY
# The one constructor default that differs between the repositories' StyleGAN2 networks: stylegan2-ada-pytorch's
# training/networks.py leaves conv_clamp None (its train.py always passes 256); stylegan3's
# training/networks_stylegan2.py (and DragGAN's copy) defaults SynthesisNetwork's and Discriminator's to 256, and
# its train.py passes conv_clamp only with --fp32 (None). Which repository built a network shows in its
# generator's init_kwargs (`source_repository`).
CONV_CLAMP_DEFAULT = {"stylegan2-ada": None, "stylegan3": 256}


def _refuse_unknown(where: str, kwargs: dict, known: set[str]):
    unknown = sorted(set(kwargs) - known)
    if unknown:
        raise ConversionError(f"{where}: unsupported constructor arguments {unknown}")


def _require(where: str, value, expected, what: str):
    if value != expected:
        raise ConversionError(f"{where}: {what}={value!r} is not supported (only {expected!r})")


def source_repository(generator_init_kwargs: dict) -> str:
    """'stylegan2-ada' when a generator's synthesis arguments are nested under `synthesis_kwargs` (stylegan2-ada's
    Generator), else 'stylegan3': that repository's generators (StyleGAN2 and StyleGAN3 ones, and DragGAN's) take
    them flat."""
    return "stylegan2-ada" if "synthesis_kwargs" in generator_init_kwargs else "stylegan3"


def generator_config(init_kwargs: dict) -> GeneratorConfig:
    """GeneratorConfig from a stylegan2-ada Generator's init_kwargs (synthesis kwargs nested or, stylegan3-repo
    style, flat at the top level; conv_clamp then defaults to that repository's 256)."""
    kw = dict(init_kwargs)
    conv_clamp_default = CONV_CLAMP_DEFAULT[source_repository(kw)]
    top = {"z_dim", "c_dim", "w_dim", "img_resolution", "img_channels", "mapping_kwargs", "synthesis_kwargs"}
    synthesis = dict(kw.pop("synthesis_kwargs", None) or {})
    synthesis.update({k: kw.pop(k) for k in list(kw) if k not in top})  # stylegan3-repo flattens them
    mapping = dict(kw.get("mapping_kwargs") or {})
    missing = [k for k in ("z_dim", "c_dim", "w_dim", "img_resolution", "img_channels") if k not in kw]
    if missing:
        raise ConversionError(f"generator init_kwargs lack {missing}")
    _refuse_unknown("generator synthesis", synthesis, _SYNTHESIS_KEYS)
    _refuse_unknown("generator mapping", mapping, _MAPPING_KEYS)
    _require("generator synthesis", synthesis.get("kernel_size", 3), 3, "kernel_size")
    _require("generator mapping", mapping.get("activation", "lrelu"), "lrelu", "activation")
    img_resolution = int(kw["img_resolution"])
    return GeneratorConfig(
        z_dim=int(kw["z_dim"]), c_dim=int(kw["c_dim"]), w_dim=int(kw["w_dim"]), img_resolution=img_resolution,
        img_channels=int(kw["img_channels"]),
        channels=channels_by_resolution(img_resolution, int(synthesis.get("channel_base", 32768)),
                                        int(synthesis.get("channel_max", 512))),
        mapping_layers=int(mapping.get("num_layers", 8)),
        mapping_lr_multiplier=float(mapping.get("lr_multiplier", 0.01)),
        embed_features=mapping.get("embed_features"), layer_features=mapping.get("layer_features"),
        architecture=synthesis.get("architecture", "skip"), conv_clamp=synthesis.get("conv_clamp", conv_clamp_default),
        resample_filter=tuple(synthesis.get("resample_filter", (1, 3, 3, 1))),
        use_noise=bool(synthesis.get("use_noise", True)), activation=synthesis.get("activation", "lrelu"))


def discriminator_config(init_kwargs: dict, repository: str = "stylegan2-ada") -> DiscriminatorConfig:
    """DiscriminatorConfig from a Discriminator's init_kwargs; `repository` (of `source_repository`: the snapshot's
    generator tells) gives the conv_clamp default."""
    kw = dict(init_kwargs)
    block = dict(kw.pop("block_kwargs", None) or {})
    mapping = dict(kw.pop("mapping_kwargs", None) or {})
    epilogue = dict(kw.pop("epilogue_kwargs", None) or {})
    _refuse_unknown("discriminator", kw, {"c_dim", "img_resolution", "img_channels", "architecture", "channel_base",
                                          "channel_max", "num_fp16_res", "conv_clamp", "cmap_dim"})
    _refuse_unknown("discriminator block", block, {"activation", "resample_filter"} | _EXECUTION_ONLY)
    _refuse_unknown("discriminator mapping", mapping, _MAPPING_KEYS)
    _refuse_unknown("discriminator epilogue", epilogue, {"mbstd_group_size", "mbstd_num_channels", "activation"})
    activation = block.get("activation", "lrelu")
    _require("discriminator epilogue", epilogue.get("activation", activation), activation, "activation")
    _require("discriminator mapping", mapping.get("activation", "lrelu"), "lrelu", "activation")
    img_resolution = int(kw["img_resolution"])
    return DiscriminatorConfig(
        c_dim=int(kw["c_dim"]), img_resolution=img_resolution, img_channels=int(kw["img_channels"]),
        channels=channels_by_resolution(img_resolution, int(kw.get("channel_base", 32768)),
                                        int(kw.get("channel_max", 512))),
        architecture=kw.get("architecture", "resnet"), conv_clamp=kw.get("conv_clamp", CONV_CLAMP_DEFAULT[repository]),
        cmap_dim=kw.get("cmap_dim"),
        mbstd_group_size=epilogue.get("mbstd_group_size", 4),
        mbstd_num_channels=int(epilogue.get("mbstd_num_channels", 1)),
        mapping_layers=int(mapping.get("num_layers", 8)),
        mapping_lr_multiplier=float(mapping.get("lr_multiplier", 0.01)),
        mapping_embed_features=mapping.get("embed_features"), mapping_layer_features=mapping.get("layer_features"),
        resample_filter=tuple(block.get("resample_filter", (1, 3, 3, 1))), activation=activation)


def generator_key_pairs(cfg: GeneratorConfig) -> list[KeyPair]:
    """The official `Generator.state_dict()` of `cfg`, key by key in its order (synthesis, then mapping; within a
    module its parameters, its buffers, then its children): the names are jaxgan's, the shapes too, and the FIR
    `resample_filter` buffers (every synthesis block, every SynthesisLayer, each resnet skip) are constants."""
    fir = setup_filter(cfg.resample_filter)

    def same(*keys):
        return [KeyPair(key, key) for key in keys]

    def constant(key):
        return KeyPair(key, None, constant=fir, describe=f"expected setup_filter({list(cfg.resample_filter)})")

    def layer(prefix):  # SynthesisLayer: weight, noise_strength, bias; resample_filter, noise_const; affine
        noise = cfg.use_noise
        return (same(f"{prefix}.weight", *[f"{prefix}.noise_strength"] * noise, f"{prefix}.bias")
                + [constant(f"{prefix}.resample_filter")] + same(*[f"{prefix}.noise_const"] * noise,
                                                                 f"{prefix}.affine.weight", f"{prefix}.affine.bias"))

    pairs = []
    for res in cfg.block_resolutions:
        block = f"synthesis.b{res}"
        pairs += same(f"{block}.const") if res == 4 else []
        pairs += [constant(f"{block}.resample_filter")]
        pairs += [] if res == 4 else layer(f"{block}.conv0")
        pairs += layer(f"{block}.conv1")
        if res == cfg.img_resolution or cfg.architecture == "skip":
            pairs += same(*(f"{block}.torgb.{p}" for p in ("weight", "bias", "affine.weight", "affine.bias")))
        if res > 4 and cfg.architecture == "resnet":
            pairs += same(f"{block}.skip.weight") + [constant(f"{block}.skip.resample_filter")]
    pairs += same("mapping.w_avg") if cfg.w_avg_beta is not None else []
    pairs += same("mapping.embed.weight", "mapping.embed.bias") if cfg.c_dim else []
    for idx in range(cfg.mapping_layers):
        pairs += same(f"mapping.fc{idx}.weight", f"mapping.fc{idx}.bias")
    return pairs


def _present(tensors, pattern: str) -> list[re.Match]:
    return [m for key in tensors if (m := re.fullmatch(pattern, key))]


def state_dict_generator_config(tensors: dict) -> GeneratorConfig:
    """GeneratorConfig of a bare stylegan2-ada Generator state dict: sizes from the tensor shapes, the architecture
    from the keys present, everything else the official constructor defaults (see the module docstring)."""
    try:
        resolutions = sorted(int(m.group(1)) for m in _present(tensors, r"synthesis\.b(\d+)\.conv1\.weight"))
        if not resolutions:
            raise KeyError("synthesis.b4.conv1.weight")
        img_resolution = resolutions[-1]
        num_layers = len(_present(tensors, r"mapping\.fc\d+\.weight"))
        fc0 = tensors["mapping.fc0.weight"]
        w_dim = tensors[f"mapping.fc{num_layers - 1}.weight"].shape[0]
        c_dim = tensors["mapping.embed.weight"].shape[1] if "mapping.embed.weight" in tensors else 0
        embed = tensors["mapping.embed.weight"].shape[0] if c_dim else 0
        layer_features = fc0.shape[0] if num_layers > 1 else w_dim
        if _present(tensors, r"synthesis\.b\d+\.skip\.weight"):
            architecture = "resnet"
        elif img_resolution > 4 and "synthesis.b4.torgb.weight" not in tensors:
            architecture = "orig"
        else:
            architecture = "skip"
        return GeneratorConfig(
            z_dim=fc0.shape[1] - embed, c_dim=c_dim, w_dim=w_dim, img_resolution=img_resolution,
            img_channels=tensors[f"synthesis.b{img_resolution}.torgb.weight"].shape[0],
            channels=tuple(tensors[f"synthesis.b{res}.conv1.weight"].shape[0] for res in resolutions),
            mapping_layers=num_layers, embed_features=None if embed in (0, w_dim) else embed,
            layer_features=None if layer_features == w_dim else layer_features,
            w_avg_beta=0.995 if "mapping.w_avg" in tensors else None, architecture=architecture,
            use_noise="synthesis.b4.conv1.noise_strength" in tensors)
    except KeyError as e:
        raise ConversionError(f"no {e.args[0]!r}: not a stylegan2-ada Generator state dict") from None
    except ValueError as e:  # e.g. resolutions that are not 4, 8, 16, ...
        raise ConversionError(f"not a stylegan2-ada Generator state dict: {e}") from None


def convert_generator_state_dict(tensors: dict, cfg: GeneratorConfig | None = None) -> SplitModel:
    """A stylegan2-ada Generator state dict -> SplitModel; `cfg` None: inferred (`state_dict_generator_config`)."""
    if is_stylegan3_state_dict(tensors):
        raise ConversionError("a bare StyleGAN3 (networks_stylegan3) state dict: its constructor arguments are not "
                              "in it; convert the network pickle (.pkl) instead")
    cfg = state_dict_generator_config(tensors) if cfg is None else cfg
    abstract = abstract_model(cfg)
    return fill_model(abstract, map_pairs(tensors, generator_key_pairs(cfg), leaf_shapes(abstract)))


INFERRED_CONFIG = ("read from the tensor shapes and the keys present; mapping lr_multiplier 0.01, conv_clamp None, "
                   "w_avg_beta 0.995, activation lrelu: the defaults of training/networks.py")


def convert_generator_file(path) -> tuple[dict[str, SplitModel], dict]:
    """A torch.save file holding a bare stylegan2-ada Generator state dict (`jaxgan export --layout stylegan2-ada
    --format pt`, or `torch.save(G.state_dict(), ...)`) -> ({'G': generator}, notes)."""
    data = load_torch_file(path)
    if not isinstance(data, dict) or not all(isinstance(v, np.ndarray) for v in data.values()):
        raise ConversionError(f"{path}: expected a stylegan2-ada Generator state dict (a flat dict of tensors)")
    return {"G": convert_generator_state_dict(dict(data))}, {"format": "stylegan2-ada-state-dict",
                                                              "config": INFERRED_CONFIG}


def identity_key_map(resample_filter) -> list[KeyRule]:
    """Discriminators (read only, never exported): stylegan2-ada state-dict names are jaxgan's; the FIR
    `resample_filter` buffers are constants to check."""
    expected = setup_filter(resample_filter)
    return [
        KeyRule(r"(.*\.)?resample_filter", None, check=lambda a: a.shape == expected.shape and np.allclose(a, expected),
                describe=f"expected setup_filter({list(resample_filter)})"),
        KeyRule(r"(?!(.*\.)?resample_filter$)(.+)", r"\2"),
    ]


def convert_state_dict(class_name: str, init_kwargs: dict, tensors: dict, which: str = "network",
                       repository: str = "stylegan2-ada") -> SplitModel:
    """A `Generator` / `Discriminator` given as constructor arguments plus a state dict of numpy arrays (what a
    network pickle holds, or what a fixture or a hand-built export stores) -> SplitModel. `repository`: where a
    discriminator's defaults come from (a generator's own arguments tell)."""
    if class_name not in ("Generator", "Discriminator"):
        raise ConversionError(f"{which} is a {class_name!r}, expected a Generator or Discriminator")
    if class_name == "Generator" and is_stylegan3_state_dict(tensors):
        return convert_stylegan3_generator(init_kwargs, tensors)
    if class_name == "Generator":
        return convert_generator_state_dict(tensors, generator_config(init_kwargs))
    cfg = discriminator_config(init_kwargs, repository)
    return fill_model(abstract_model(cfg), map_keys(tensors, identity_key_map(cfg.resample_filter)))


def convert_network(obj: PersistentObject, which: str, repository: str = "stylegan2-ada") -> SplitModel:
    """One persistent network (`G_ema` / `G` / `D`) -> SplitModel."""
    if not isinstance(obj, PersistentObject):
        raise ConversionError(f"{which} is a {type(obj).__name__}, not a pickled stylegan2 network")
    return convert_state_dict(obj.class_name, obj.init_kwargs, obj.state_dict(), which, repository)


def convert_pickle(path) -> tuple[dict[str, SplitModel], dict]:
    """Read a network pickle; returns ({'G': generator (from G_ema), 'D': discriminator if present}, notes)."""
    data = load_network_pickle(path)
    if not isinstance(data, dict):
        raise ConversionError(f"{path}: expected a pickled dict with 'G_ema' (a stylegan2-ada / stylegan3-repo / "
                              f"DragGAN network pickle), got {type(data).__name__}; legacy TensorFlow pickles are "
                              "not supported")
    if "G_ema" not in data:
        raise ConversionError(f"{path}: no 'G_ema' network in the pickle (it holds {sorted(map(str, data))})")
    models = {"G": convert_network(data["G_ema"], "G_ema")}
    repository = source_repository(data["G_ema"].init_kwargs)
    if data.get("D") is not None:
        models["D"] = convert_network(data["D"], "D", repository)
    notes = {
        "format": "stylegan2-ada-pkl",
        "repository": repository,
        "networks": {name: {"class_name": obj.class_name, "module_src_sha256": obj.module_src_sha256,
                            "init_kwargs": obj.init_kwargs}
                     for name, obj in data.items() if isinstance(obj, PersistentObject)},
        "converted": {"G": "G_ema", **({"D": "D"} if "D" in models else {})},
    }
    return models, notes
