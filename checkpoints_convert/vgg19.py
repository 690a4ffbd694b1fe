"""torchvision VGG19 weights (`vgg19-dcbb9e9d.pth`) -> the jaxgan VGG19 trunk of pix2pixHD's perceptual loss.

Follows pix2pixHD's `Vgg19` (`models/networks.py`, NVIDIA/pix2pixHD@14b3b3c).
The file is `vgg19().state_dict()` (zip or legacy
torch.save): `features.{0,2,5,...,34}.{weight,bias}` and the classifier head `classifier.{0,3,6}.*`. The loss reads
relu1_1 ... relu5_1, so convs 0 ... 28 map 1:1 onto jaxgan's trunk; convs 30, 32, 34 (after relu5_1) and the
classifier are matched by explicit rules and dropped (listed in the notes), as checkpoints_convert/lpips.py
does for VGG16's head; any other key is refused. Stage widths are read from the shapes (torchvision's are
64-128-256-512-512; smaller VGG19-shaped nets convert too), then every shape is checked by the strict fill.
"""


import numpy as np

from checkpoints_convert.keymap import ConversionError, KeyRule, fill_model, map_keys
from checkpoints_convert.torch_reader import load_torch_file
from jaxgan.files import sha256_of
from jaxgan.models import vgg19
from jaxgan.nn.split import SplitModel

MODEL_NAME = "VGG19"
# torchvision names its downloads `<arch>-<first 8 hex digits of the file's SHA-256>.pth`
TORCHVISION_VGG19_SHA256_PREFIX = "dcbb9e9d"
_FLOAT_DTYPES = (np.float16, np.float32)


def _float32(array: np.ndarray) -> np.ndarray:
    return array.astype(np.float32)


def _alternatives(indices) -> str:
    return "|".join(str(i) for i in indices)


KEY_MAP = [
    KeyRule(rf"features\.({_alternatives(vgg19.USED_CONVS)})\.(weight|bias)", r"features.\1.\2", _float32),
    # after relu5_1: part of the file, never run by the loss
    KeyRule(rf"features\.({_alternatives(vgg19.UNUSED_CONVS)})\.(weight|bias)", None),
    KeyRule(r"classifier\.(0|3|6)\.(weight|bias)", None),
]


def infer_widths(state) -> tuple[int, ...]:
    """Each stage's width, from the output channels of its first conv."""
    widths = []
    for index in vgg19.TAP_CONVS:
        key = f"features.{index}.weight"
        if key not in state:
            raise ConversionError(f"missing {key}: not a torchvision vgg19 state dict")
        widths.append(int(np.shape(state[key])[0]))
    return tuple(widths)


def convert_vgg19(path) -> tuple[dict[str, SplitModel], dict]:
    """Read torchvision's vgg19 weights; returns ({'VGG19': model}, notes). Raises CheckpointError / ConversionError."""
    state = load_torch_file(path)
    if not isinstance(state, dict) or not all(isinstance(v, np.ndarray) for v in state.values()):
        raise ConversionError(f"expected a state dict of tensors (torchvision vgg19), found {type(state).__name__}")
    bad = sorted(f"{k} ({v.dtype})" for k, v in state.items() if v.dtype not in _FLOAT_DTYPES)
    if bad:
        raise ConversionError(f"expected float16 or float32 tensors; found {', '.join(bad)}")
    cfg = vgg19.VGG19Config(widths=infer_widths(state))
    model = fill_model(vgg19.abstract_model(cfg), map_keys(state, KEY_MAP))
    used = {f"features.{i}.{leaf}" for i in vgg19.USED_CONVS for leaf in ("weight", "bias")}
    notes = {"format": "torchvision-vgg19", "ignored_keys": sorted(k for k in state if k not in used),
             "vgg19_is_torchvision_dcbb9e9d": sha256_of(path).startswith(TORCHVISION_VGG19_SHA256_PREFIX)}
    return {MODEL_NAME: model}, notes
