"""EditGAN encoder files (`BEST_loss*.pth`) -> one jaxgan `FPNEncoder`.

Follows `train_encoder.py` of nv-tlabs/editGAN_release@fef9ab8, which saves `{'model_state_dict':
FPNEncoder.state_dict()}` with torch.save (the released `checkpoint/encoder_pretrain/BEST_loss2.841871976852417.pth`,
568 entries). A bare state dict is accepted too, and so is the `module.` prefix of an encoder saved from inside
`nn.DataParallel` (the official trainer does not wrap it, other training scripts do).

jaxgan's module names are the state-dict names, so the key map is the identity; it is still strict (every source
key consumed, every target leaf filled with the right shape). `num_batches_tracked` is checked to be an integer
count and dropped: with BatchNorm's default momentum PyTorch never reads it. Every size is read from the tensor
shapes: the stem width from `FPN_module.conv1`, the blocks per stage from the `layer{k}.{i}` keys, the pyramid width
from `toplayer`, the head width and W+ width from the first coarse head, the number of W+ rows from the heads.
"""

import re
from pathlib import Path

import numpy as np

from checkpoints_convert.keymap import ConversionError, KeyRule, fill_model, map_keys
from checkpoints_convert.torch_reader import load_torch_file
from jaxgan.models.encoder import FIXED_ROWS, OFFICIAL_HEAD_CONVS, EncoderConfig, abstract_model
from jaxgan.nn.split import SplitModel

MODEL_NAME = "E"
_PREFIX = r"(?:module\.)?"
ENCODER_KEY_MAP = [
    KeyRule(_PREFIX + r"(.+\.(?:running_mean|running_var))", r"\1"),
    KeyRule(_PREFIX + r"(.+)\.num_batches_tracked", None,
            check=lambda a: a.shape == () and np.issubdtype(a.dtype, np.integer), describe="an integer count"),
    KeyRule(_PREFIX + r"((?:FPN_module|course_styles|medium_styles|fine_styles)\..+\.(?:weight|bias))", r"\1"),
]


def _state_dict(path: Path) -> dict:
    data = load_torch_file(path)
    if isinstance(data, dict) and "model_state_dict" in data:
        data = data["model_state_dict"]
    if not isinstance(data, dict) or not all(isinstance(v, np.ndarray) for v in data.values()):
        raise ConversionError(f"expected {{'model_state_dict': state dict}} of an EditGAN FPNEncoder, found "
                              f"{type(data).__name__}")
    return data


def config_from_tensors(tensors: dict) -> EncoderConfig:
    """The encoder's sizes, read from its (prefix-free) tensors."""
    try:
        stem = tensors["FPN_module.conv1.weight"]
        head = tensors["course_styles.0.convs.0.weight"]
        linear = tensors["course_styles.0.linear.weight"]
        fpn_dim = tensors["FPN_module.toplayer.weight"].shape[0]
    except KeyError as e:
        raise ConversionError(f"lacks {e.args[0]}: not an EditGAN FPNEncoder state dict") from None
    blocks = []
    for k in range(1, 5):
        indices = {int(m.group(1)) for key in tensors
                   if (m := re.fullmatch(rf"FPN_module\.layer{k}\.(\d+)\.conv1\.weight", key))}
        blocks.append(len(indices))
    fine = {int(m.group(1)) for key in tensors if (m := re.fullmatch(r"fine_styles\.(\d+)\.linear\.weight", key))}
    # each group's depth from its first head (convs at Sequential indices 0, 2, 4, ...)
    head_convs = tuple(len({m.group(1) for key in tensors
                            if (m := re.fullmatch(rf"{group}\.0\.convs\.(\d+)\.weight", key))})
                       for group in ("course_styles", "medium_styles", "fine_styles"))
    if not fine:  # num_ws 7: no fine head to read; the official depth
        head_convs = head_convs[:2] + OFFICIAL_HEAD_CONVS[2:]
    try:
        return EncoderConfig(num_ws=FIXED_ROWS + len(fine), w_dim=linear.shape[0], in_channels=stem.shape[1],
                             base_width=stem.shape[0], stage_blocks=tuple(blocks), fpn_dim=fpn_dim,
                             head_dim=head.shape[0], head_convs=head_convs)
    except ValueError as e:
        raise ConversionError(f"not an FPNEncoder this converter knows: {e}") from None


def convert_editgan_encoder(path) -> tuple[dict[str, SplitModel], dict]:
    """Read an EditGAN encoder file; returns ({'E': encoder}, notes) for `jaxgan.checkpoint.save_checkpoint`."""
    state = _state_dict(Path(path))
    tensors = map_keys(state, ENCODER_KEY_MAP)
    cfg = config_from_tensors(tensors)
    model = fill_model(abstract_model(cfg), tensors)
    prefixed = any(k.startswith("module.") for k in state)
    notes = {"format": "editgan-fpn-encoder", "module_prefix": prefixed, "num_ws": cfg.num_ws, "w_dim": cfg.w_dim}
    return {MODEL_NAME: model}, notes
