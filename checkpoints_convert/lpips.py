"""LPIPS v0.1 (vgg or alex): a torchvision trunk state dict plus the LPIPS lin-layer file -> one jaxgan LPIPS model.

Follows richzhang/PerceptualSimilarity@082bb24 (`LPIPS.__init__` in `lpips/lpips.py`, the `vgg16` and `alexnet`
classes of `lpips/pretrained_networks.py`). LPIPS needs two files, because the official package ships only the
calibration layers and fetches the trunk through torchvision at run time:

* the trunk weights (zip or legacy torch.save of the torchvision model's `state_dict()`): torchvision's
  `vgg16-397923af.pth` (`features.{0,2,5,...,28}.{weight,bias}`) or `alexnet-owt-7be5be79.pth`
  (`features.{0,3,6,8,10}.{weight,bias}`), mapped 1:1 onto jaxgan's trunk. The classifier head
  (vgg16 `classifier.{0,3,6}.*`, alexnet `classifier.{1,4,6}.*`: the Linear layers between Dropouts and ReLUs) is
  part of those files but LPIPS never runs it, so it is matched by an explicit rule and dropped; any other key is
  refused. float16 copies (such as the vgg test fixture) are accepted; the cast to float32 is exact.
* the lin weights of the same net, `lpips/weights/v0.1/{vgg,alex}.pth` (legacy torch.save):
  `lin{k}.model.1.weight`, [1, C_k, 1, 1]. Index 1 is the position after the Dropout; a `model.0` key (an LPIPS
  built with use_dropout=False) is refused by name rather than silently left at random values, which is what the
  official `strict=False` load in `LPIPS.__init__` does.

Both maps are strict (`checkpoints_convert.keymap`): every source key consumed, every model leaf filled once with
the right shape, all leftovers listed in one error. A vgg file given as alex (or the reverse) fails there, on the
keys and shapes.
"""

import dataclasses
from pathlib import Path

import numpy as np

from checkpoints_convert.keymap import ConversionError, KeyRule, fill_model, map_keys
from checkpoints_convert.torch_reader import load_torch_file
from jaxgan.files import sha256_of
from jaxgan.models.lpips import NETS, TRUNKS, LPIPSConfig, abstract_model
from jaxgan.nn.split import SplitModel

MODEL_NAME = "LPIPS"
_FLOAT_DTYPES = (np.float16, np.float32)  # cast exactly to float32; checked per key in `_state_dict`


def _float32(array: np.ndarray) -> np.ndarray:
    return array.astype(np.float32)


@dataclasses.dataclass(frozen=True)
class TrunkSource:
    """What the two source files of one net are, and the note keys that record whether they are the releases."""

    net: str
    torchvision_file: str          # torchvision's download of the ImageNet weights
    # torchvision names its downloads `<arch>-<first 8 hex digits of the file's SHA-256>.pth` (the `check_hash`
    # rule of `torch.hub.load_state_dict_from_url`).
    sha256_prefix: str
    classifier: tuple[int, ...]    # Sequential indices of the Linear layers of torchvision's `classifier`
    released_lin_sha256: str       # of lpips/weights/v0.1/<net>.pth
    trunk_note: str                # notes key: is the trunk file torchvision's release?

    @property
    def lin_note(self) -> str:     # notes["lin"] key: is the lin file the released one?
        return f"released_v0.1_{self.net}"


# The lin SHA-256s are the released v0.1 files' (identical in the lpips-0.1.4 wheel and, for vgg, in the copies
# vendored by rosinality/stylegan2-pytorch and nv-tlabs/editGAN_release).
SOURCES = {source.net: source for source in (
    TrunkSource("vgg", "vgg16-397923af.pth", "397923af", (0, 3, 6),
                "a78928a0af1e5f0fcb1f3b9e8f8c3a2a5a3de244d830ad5c1feddc79b8432868",
                "vgg_is_torchvision_vgg16_397923af"),
    # alexnet-owt-7be5be79.pth is the torchvision >= 0.13 weights API name (older releases downloaded
    # alexnet-owt-4df8aa71.pth); torchvision's classifier is Dropout, Linear(9216, 4096), ReLU, Dropout,
    # Linear(4096, 4096), ReLU, Linear(4096, 1000).
    TrunkSource("alex", "alexnet-owt-7be5be79.pth", "7be5be79", (1, 4, 6),
                "df73285e35b22355a2df87cdb6b70b343713b667eddbda73e1977e0c860835c0",
                "alex_is_torchvision_alexnet_owt_7be5be79"),
)}


def trunk_key_map(net: str) -> list[KeyRule]:
    """The strict map of torchvision's trunk state dict for `net`: its convs kept, its classifier dropped."""
    convs = "|".join(str(i) for i in TRUNKS[net].conv_indices)
    head = "|".join(str(i) for i in SOURCES[net].classifier)
    return [
        KeyRule(rf"features\.({convs})\.(weight|bias)", r"features.\1.\2", _float32),
        # The fully connected head: in the real file, never used by LPIPS (its taps end at the last conv's ReLU).
        KeyRule(rf"classifier\.({head})\.(weight|bias)", None),
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


def convert_lpips(trunk_path, lin_path, net: str = "vgg") -> tuple[dict[str, SplitModel], dict]:
    """Read the torchvision trunk and lin weight files of `net` ('vgg' or 'alex'); returns ({'LPIPS': model},
    notes) for `jaxgan.checkpoint.save_checkpoint`.

    Raises CheckpointError (unreadable or unsafe file) or ConversionError (keys, shapes or dtypes do not fit), each
    naming the offending file and keys; ValueError for an unknown net.
    """
    if net not in NETS:
        raise ValueError(f"LPIPS net must be one of {NETS}, got {net!r}")
    source = SOURCES[net]
    trunk = _state_dict(trunk_path, f"torchvision {TRUNKS[net].torchvision} weights")
    lin = _state_dict(lin_path, f"LPIPS v0.1 {net} lin weights")
    tensors = _mapped(trunk, trunk_key_map(net), trunk_path)
    lin_tensors = _mapped(lin, LIN_KEY_MAP, lin_path)
    try:
        model = fill_model(abstract_model(LPIPSConfig(net=net)), {**tensors, **lin_tensors})
    except ConversionError as e:
        raise ConversionError(f"{Path(trunk_path).name} + {Path(lin_path).name}: {e}") from None
    lin_sha = sha256_of(lin_path)
    # A random or fine-tuned trunk converts just as well but gives other distances; record which one this is.
    trunk_release = sha256_of(trunk_path).startswith(source.sha256_prefix)
    notes = {
        "format": f"torchvision-{TRUNKS[net].torchvision} + lpips-v0.1-lin",
        f"{net}_dtypes": sorted({str(a.dtype) for k, a in trunk.items() if k.startswith("features.")}),
        "ignored_keys": sorted(k for k in trunk if k.startswith("classifier.")),
        source.trunk_note: trunk_release,
        "lin": {"file": Path(lin_path).name, "sha256": lin_sha, source.lin_note: lin_sha == source.released_lin_sha256},
    }
    return {MODEL_NAME: model}, notes
