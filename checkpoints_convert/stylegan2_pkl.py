"""stylegan2-ada-pytorch, stylegan3-repo (StyleGAN2 networks) and DragGAN network pickles -> jaxgan models.

Follows the snapshot pickles of stylegan2-ada-pytorch (`training/training_loop.py`, `torch_utils/persistence.py`;
NVlabs/stylegan2-ada-pytorch@d72cc7d): the pickle is read by `torch_reader.load_network_pickle`, which never runs
the embedded module source; the architecture comes from each network's pickled constructor arguments
(`init_kwargs`, kept by `persistent_class`), the weights from its state dict through the identity key map of the
`training/networks.py` parameter and buffer names (jaxgan names its modules after the PyTorch ones).
`G_ema` is converted for generation and `D` when present; the training copy `G`
and `augment_pipe` are not needed for inference and are only recorded. StyleGAN3 (`networks_stylegan3`) pickles are
recognised and refused.
"""

import numpy as np

from checkpoints_convert.keymap import ConversionError, KeyRule, fill_model, map_keys
from checkpoints_convert.torch_reader import PersistentObject, load_network_pickle
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


def _refuse_unknown(where: str, kwargs: dict, known: set[str]):
    unknown = sorted(set(kwargs) - known)
    if unknown:
        raise ConversionError(f"{where}: unsupported constructor arguments {unknown}")


def _require(where: str, value, expected, what: str):
    if value != expected:
        raise ConversionError(f"{where}: {what}={value!r} is not supported (only {expected!r})")


def generator_config(init_kwargs: dict) -> GeneratorConfig:
    """GeneratorConfig from a stylegan2-ada Generator's init_kwargs (synthesis kwargs nested or, stylegan3-repo
    style, flat at the top level)."""
    kw = dict(init_kwargs)
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
        architecture=synthesis.get("architecture", "skip"), conv_clamp=synthesis.get("conv_clamp"),
        resample_filter=tuple(synthesis.get("resample_filter", (1, 3, 3, 1))),
        use_noise=bool(synthesis.get("use_noise", True)), activation=synthesis.get("activation", "lrelu"))


def discriminator_config(init_kwargs: dict) -> DiscriminatorConfig:
    """DiscriminatorConfig from a stylegan2-ada Discriminator's init_kwargs."""
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
        architecture=kw.get("architecture", "resnet"), conv_clamp=kw.get("conv_clamp"), cmap_dim=kw.get("cmap_dim"),
        mbstd_group_size=epilogue.get("mbstd_group_size", 4),
        mbstd_num_channels=int(epilogue.get("mbstd_num_channels", 1)),
        mapping_layers=int(mapping.get("num_layers", 8)),
        mapping_lr_multiplier=float(mapping.get("lr_multiplier", 0.01)),
        mapping_embed_features=mapping.get("embed_features"), mapping_layer_features=mapping.get("layer_features"),
        resample_filter=tuple(block.get("resample_filter", (1, 3, 3, 1))), activation=activation)


def identity_key_map(resample_filter) -> list[KeyRule]:
    """stylegan2-ada state-dict names are jaxgan's; the FIR `resample_filter` buffers are constants to check."""
    expected = setup_filter(resample_filter)
    return [
        KeyRule(r"(.*\.)?resample_filter", None, check=lambda a: a.shape == expected.shape and np.allclose(a, expected),
                describe=f"expected setup_filter({list(resample_filter)})"),
        KeyRule(r"(?!(.*\.)?resample_filter$)(.+)", r"\2"),
    ]


def convert_state_dict(class_name: str, init_kwargs: dict, tensors: dict, which: str = "network") -> SplitModel:
    """A stylegan2-ada `Generator` / `Discriminator` given as constructor arguments plus a state dict of numpy
    arrays (what a network pickle holds, or what a fixture or a hand-built export stores) -> SplitModel."""
    if any(key.startswith("synthesis.input.") for key in tensors):
        raise ConversionError(f"{which} is a StyleGAN3 (networks_stylegan3) generator: not supported yet; "
                              "only StyleGAN2 networks can be converted")
    if class_name not in ("Generator", "Discriminator"):
        raise ConversionError(f"{which} is a {class_name!r}, expected a Generator or Discriminator")
    if class_name == "Generator":
        cfg = generator_config(init_kwargs)
    else:
        cfg = discriminator_config(init_kwargs)
    return fill_model(abstract_model(cfg), map_keys(tensors, identity_key_map(cfg.resample_filter)))


def convert_network(obj: PersistentObject, which: str) -> SplitModel:
    """One persistent network (`G_ema` / `G` / `D`) -> SplitModel."""
    if not isinstance(obj, PersistentObject):
        raise ConversionError(f"{which} is a {type(obj).__name__}, not a pickled stylegan2 network")
    return convert_state_dict(obj.class_name, obj.init_kwargs, obj.state_dict(), which)


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
    if data.get("D") is not None:
        models["D"] = convert_network(data["D"], "D")
    notes = {
        "format": "stylegan2-ada-pkl",
        "networks": {name: {"class_name": obj.class_name, "module_src_sha256": obj.module_src_sha256,
                            "init_kwargs": obj.init_kwargs}
                     for name, obj in data.items() if isinstance(obj, PersistentObject)},
        "converted": {"G": "G_ema", **({"D": "D"} if "D" in models else {})},
    }
    return models, notes
