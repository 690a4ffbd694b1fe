"""LPIPS v0.1 (vgg): a torchvision VGG16 state dict plus the LPIPS lin-layer file -> one jaxgan LPIPS model.

Follows richzhang/PerceptualSimilarity@082bb24 (`LPIPS.__init__` in `lpips/lpips.py`, `lpips/pretrained_networks.py`).
LPIPS needs two files, because the official package ships only the calibration layers and fetches the trunk
through torchvision at run time:

* the VGG16 weights, torchvision's `vgg16-397923af.pth` (zip or legacy torch.save of `vgg16().state_dict()`):
  `features.{0,2,5,...,28}.{weight,bias}` map 1:1 onto jaxgan's trunk; the classifier head
  `classifier.{0,3,6}.{weight,bias}` is part of that file but LPIPS never runs it, so it is matched by an explicit
  rule and dropped (any other key is refused). float16 copies (such as the test fixture) are accepted; the cast
  to float32 is exact.
* the lin weights, `lpips/weights/v0.1/vgg.pth` (legacy torch.save): `lin{k}.model.1.weight`, [1, C_k, 1, 1]. Index 1
  is the position after the Dropout; a `model.0` key (an LPIPS built with use_dropout=False) is refused by name
  rather than silently left at random values, which is what the official `strict=False` load in `LPIPS.__init__` does.

Both maps are strict (`checkpoints_convert.keymap`): every source key consumed, every model leaf filled once with
the right shape, all leftovers listed in one error.
"""

from pathlib import Path

import numpy as np

from checkpoints_convert.keymap import ConversionError, KeyRule, fill_model, map_keys
from checkpoints_convert.torch_reader import load_torch_file
from jaxgan.files import sha256_of
from jaxgan.models.lpips import TRUNKS, LPIPSConfig, abstract_model
from jaxgan.nn.split import SplitModel

MODEL_NAME = "LPIPS"
# SHA-256 of the released lpips v0.1 vgg.pth (identical in the lpips-0.1.4 wheel and in the copies
# vendored by rosinality/stylegan2-pytorch and nv-tlabs/editGAN_release).
RELEASED_LIN_SHA256 = "a78928a0af1e5f0fcb1f3b9e8f8c3a2a5a3de244d830ad5c1feddc79b8432868"
# torchvision names its downloads `<arch>-<first 8 hex digits of the file's SHA-256>.pth` (the `check_hash` rule
# of `torch.hub.load_state_dict_from_url`).
TORCHVISION_VGG16_SHA256_PREFIX = "397923af"

_FLOAT_DTYPES = (np.float16, np.float32)  # cast exactly to float32; checked per key in `_state_dict`


def _float32(array: np.ndarray) -> np.ndarray:
    return array.astype(np.float32)


_CONVS = "|".join(str(i) for i in TRUNKS["vgg"].conv_indices)

VGG16_KEY_MAP = [
    KeyRule(rf"features\.({_CONVS})\.(weight|bias)", r"features.\1.\2", _float32),
    # The fully connected head of torchvision's VGG16: in the real file, never used by LPIPS (taps end at relu5_3).
    KeyRule(r"classifier\.(0|3|6)\.(weight|bias)", None),
]

LIN_KEY_MAP = [
    KeyRule(r"lin([0-4])\.model\.1\.weight", r"lin\1.weight", _float32),
]


def _state_dict(path, what: str) -> dict:
    data = load_torch_file(path)
    if not isinstance(data, dict) or not all(isinstance(k, str) for k in data):
        raise ConversionError(f"{Path(path).name}: expected a state dict ({what}), found {type(data).__name__}")
    bad = sorted(k for k, v in data.items() if not isinstance(v, np.ndarray))
    if bad:
        raise ConversionError(f"{Path(path).name}: expected a state dict of tensors ({what}); not tensors: "
                              f"{', '.join(bad)}")
    # float64 would lose precision silently, integer or bfloat16 tensors are not weights of these networks.
    bad = sorted(f"{k} ({v.dtype})" for k, v in data.items() if v.dtype not in _FLOAT_DTYPES)
    if bad:
        raise ConversionError(f"{Path(path).name}: expected float16 or float32 tensors ({what}); found "
                              f"{', '.join(bad)}")
    return dict(data)


def _mapped(state: dict, rules, path) -> dict:
    try:
        return map_keys(state, rules)
    except ConversionError as e:
        raise ConversionError(f"{Path(path).name}: {e}") from None


def convert_lpips_vgg(vgg_path, lin_path) -> tuple[dict[str, SplitModel], dict]:
    """Read the VGG16 and lin weight files; returns ({'LPIPS': model}, notes) for `jaxgan.checkpoint.save_checkpoint`.

    Raises CheckpointError (unreadable or unsafe file) or ConversionError (keys, shapes or dtypes do not fit), each
    naming the offending file and keys.
    """
    vgg = _state_dict(vgg_path, "torchvision vgg16 weights")
    lin = _state_dict(lin_path, "LPIPS v0.1 vgg lin weights")
    tensors = _mapped(vgg, VGG16_KEY_MAP, vgg_path)
    lin_tensors = _mapped(lin, LIN_KEY_MAP, lin_path)
    try:
        model = fill_model(abstract_model(LPIPSConfig()), {**tensors, **lin_tensors})
    except ConversionError as e:
        raise ConversionError(f"{Path(vgg_path).name} + {Path(lin_path).name}: {e}") from None
    lin_sha = sha256_of(lin_path)
    # A random or fine-tuned trunk converts just as well but gives other distances; record which one this is.
    vgg_release = sha256_of(vgg_path).startswith(TORCHVISION_VGG16_SHA256_PREFIX)
    notes = {
        "format": "torchvision-vgg16 + lpips-v0.1-lin",
        "vgg_dtypes": sorted({str(a.dtype) for k, a in vgg.items() if k.startswith("features.")}),
        "ignored_keys": sorted(k for k in vgg if k.startswith("classifier.")),
        "vgg_is_torchvision_vgg16_397923af": vgg_release,
        "lin": {"file": Path(lin_path).name, "sha256": lin_sha, "released_v0.1_vgg": lin_sha == RELEASED_LIN_SHA256},
    }
    return {MODEL_NAME: model}, notes
