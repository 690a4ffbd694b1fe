"""Convert a checkpoint file into a jaxgan checkpoint directory: detect the format, convert, save atomically.

The format is detected from the file's first bytes, never from its name: a safetensors header (8-byte length, then a
JSON object) is a `.safetensors` generator (`jaxgan export`'s), a zip archive or a legacy torch.save stream is a
torch file: a bare stylegan2-ada Generator state dict when its pickle's first key is a `synthesis.` / `mapping.`
name (`jaxgan export --layout stylegan2-ada --format pt`), otherwise a rosinality checkpoint; any other pickle is a
network pickle (stylegan2-ada / stylegan3-repo / DragGAN `.pkl`). The output is written by
`jaxgan.checkpoint.save_checkpoint` (temporary directory, then rename) with a sidecar recording the source file's
SHA-256 and this converter's version.

LPIPS (kinds 'lpips-vgg' and 'lpips-alex') is never auto-detected: its source is two files, the torchvision VGG16 or
AlexNet weights (`src`) and the LPIPS lin weights of the same net (`lin`), and a torchvision state dict is a torch
file like any other. Neither is the segmentation branch (kind 'segbranch'): its source is the ensemble's classifier
files, or their directory. Nor is pix2pixHD (kind 'pix2pixhd'): its `.pth` files are torch files like rosinality's;
which network a file holds (G, D or E) is inferred from its keys. Nor is torchvision's VGG19 (kind 'vgg19', the
trunk of pix2pixHD's VGG loss), nor EditGAN's encoder (kind 'editgan-encoder', a `{'model_state_dict': ...}` file
like the classifiers').
"""

import json
from pathlib import Path

from checkpoints_convert.formats import LPIPS_SOURCE_NETS, SOURCE_KINDS, TWO_FILE_KINDS
from checkpoints_convert.editgan_encoder import convert_editgan_encoder
from checkpoints_convert.keymap import ConversionError
from checkpoints_convert.lpips import convert_lpips
from checkpoints_convert.pix2pixhd import convert_pix2pixhd
from checkpoints_convert.rosinality import convert_rosinality
from checkpoints_convert.safetensors_file import convert_safetensors, is_safetensors
from checkpoints_convert.segbranch import convert_segbranch, member_files
from checkpoints_convert.stylegan2_pkl import convert_generator_file, convert_pickle
from checkpoints_convert.torch_reader import CheckpointError, sniff_format, zip_first_string
from checkpoints_convert.vgg19 import convert_vgg19
from jaxgan.checkpoint import save_checkpoint
from jaxgan.files import sha256_of

CONVERTER_VERSION = "1.0"
_CONVERTERS = {"stylegan2-ada": convert_pickle, "stylegan2-ada-pt": convert_generator_file,
               "rosinality": convert_rosinality, "safetensors": convert_safetensors, "vgg19": convert_vgg19,
               "editgan-encoder": convert_editgan_encoder}
_STATE_DICT_PREFIXES = ("synthesis.", "mapping.")  # the first keys of a stylegan2-ada Generator.state_dict()


def detect_kind(path: Path) -> str:
    if is_safetensors(path):
        return "safetensors"
    fmt = sniff_format(path)
    if fmt == "torch-zip":
        try:
            if (zip_first_string(path) or "").startswith(_STATE_DICT_PREFIXES):
                return "stylegan2-ada-pt"
        except CheckpointError:  # a damaged archive: the converter reports it when it reads the file
            pass
    if fmt in ("torch-zip", "torch-legacy"):
        return "rosinality"
    if fmt == "pickle":
        return "stylegan2-ada"
    raise CheckpointError(f"{path}: neither a PyTorch checkpoint (.pt/.pth), a network pickle (.pkl) nor a "
                          ".safetensors file")


def _json_safe(value):
    """numpy scalars and arrays become numbers and lists; anything else JSON cannot hold becomes its repr."""
    return json.loads(json.dumps(value, default=lambda v: v.tolist() if hasattr(v, "tolist") else repr(v)))


def convert_segbranch_files(sources, dst) -> Path:
    """Convert DatasetGAN / EditGAN classifier files (or one directory of them) into the checkpoint `dst`."""
    if Path(dst).exists():
        raise FileExistsError(f"{Path(dst).resolve()} already exists; choose a new destination or remove it first")
    files = member_files(sources)
    models, notes = convert_segbranch(files)
    meta = {"source": {"files": [{"file": p.name, "sha256": sha256_of(p)} for p in files], "kind": "segbranch",
                       **_json_safe(notes)},
            "converter": {"name": "jaxgan.checkpoints_convert", "version": CONVERTER_VERSION}}
    return save_checkpoint(dst, models, meta)


def convert_file(src, dst, kind: str = "auto", lin=None, *, label_nc: int | None = None,
                 no_instance: bool | None = None, feat_num: int | None = None) -> Path:
    """Convert `src` into the new checkpoint directory `dst`; returns its absolute path.

    kind 'lpips-vgg' / 'lpips-alex': `src` is torchvision's VGG16 / AlexNet state dict and `lin` the LPIPS v0.1
    vgg / alex lin-weight file (both required); the checkpoint holds one model, 'LPIPS'. `lin` is refused with any
    other kind.
    kind 'pix2pixhd': `src` is a pix2pixHD latest_net_{G,D,E}.pth; the checkpoint holds 'G', 'D' or 'E' (several with
    a netG./netD./netE.-prefixed state dict). label_nc / no_instance / feat_num give the generator's input encoding
    (defaults 35 / False / 0) and are refused with any other kind.
    Raises CheckpointError (unreadable, corrupt or unsafe file) or ConversionError (the networks do not map onto
    jaxgan's); nothing is written at `dst` in either case.
    """
    if kind not in SOURCE_KINDS:
        raise ValueError(f"kind must be one of {SOURCE_KINDS}, got {kind!r}")
    encoding = {"label_nc": label_nc, "no_instance": no_instance, "feat_num": feat_num}
    if kind != "pix2pixhd" and any(v is not None for v in encoding.values()):
        raise ValueError("label_nc, no_instance and feat_num only go with kind 'pix2pixhd'")
    if kind in TWO_FILE_KINDS and lin is None:
        raise ValueError(f"kind {kind!r} needs the LPIPS lin-weight file as well (lin=..., CLI --lin)")
    if kind not in TWO_FILE_KINDS and lin is not None:
        raise ValueError(f"a lin-weight file only goes with kind {' or '.join(map(repr, TWO_FILE_KINDS))}, "
                         f"not {kind!r}")
    if kind == "segbranch":
        return convert_segbranch_files([src], dst)
    src = Path(src).resolve()
    files = [src] if lin is None else [src, Path(lin).resolve()]
    for path in files:
        if not path.is_file():
            raise CheckpointError(f"{path}: no such file")
    if Path(dst).exists():
        raise FileExistsError(f"{Path(dst).resolve()} already exists; choose a new destination or remove it first")
    resolved_kind = detect_kind(src) if kind == "auto" else kind
    if resolved_kind in LPIPS_SOURCE_NETS:
        models, notes = convert_lpips(src, files[1], LPIPS_SOURCE_NETS[resolved_kind])  # errors name the file(s)
    elif resolved_kind == "pix2pixhd":
        try:
            models, notes = convert_pix2pixhd(src, **encoding)
        except ConversionError as e:
            raise ConversionError(f"{src.name}: {e}") from None
    else:
        try:
            models, notes = _CONVERTERS[resolved_kind](src)
        except ConversionError as e:
            raise ConversionError(f"{src.name}: {e}") from None
    meta = {"source": {"file": src.name, "sha256": sha256_of(src), "kind": resolved_kind, **_json_safe(notes)},
            "converter": {"name": "jaxgan.checkpoints_convert", "version": CONVERTER_VERSION}}
    return save_checkpoint(dst, models, meta)
