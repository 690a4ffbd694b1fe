"""Convert a checkpoint file into a jaxgan checkpoint directory: detect the format, convert, save atomically.

The format is detected from the file's first bytes, never from its name: a zip archive or a legacy torch.save
stream is a torch file (rosinality `.pt`), any other pickle is a network pickle (stylegan2-ada / stylegan3-repo /
DragGAN `.pkl`). The output is written by `jaxgan.checkpoint.save_checkpoint` (temporary directory, then rename)
with a sidecar recording the source file's SHA-256 and this converter's version.
"""

import hashlib
import json
from pathlib import Path

from checkpoints_convert.keymap import ConversionError
from checkpoints_convert.rosinality import convert_rosinality
from checkpoints_convert.stylegan2_pkl import convert_pickle
from checkpoints_convert.torch_reader import CheckpointError, sniff_format
from jaxgan.checkpoint import save_checkpoint

CONVERTER_VERSION = "1.0"
KINDS = ("auto", "stylegan2-ada", "rosinality")
_CONVERTERS = {"stylegan2-ada": convert_pickle, "rosinality": convert_rosinality}


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def detect_kind(path: Path) -> str:
    fmt = sniff_format(path)
    if fmt in ("torch-zip", "torch-legacy"):
        return "rosinality"
    if fmt == "pickle":
        return "stylegan2-ada"
    raise CheckpointError(f"{path}: neither a PyTorch checkpoint (.pt/.pth) nor a network pickle (.pkl)")


def _json_safe(value):
    """numpy scalars and arrays become numbers and lists; anything else JSON cannot hold becomes its repr."""
    return json.loads(json.dumps(value, default=lambda v: v.tolist() if hasattr(v, "tolist") else repr(v)))


def convert_file(src, dst, kind: str = "auto") -> Path:
    """Convert `src` into the new checkpoint directory `dst`; returns its absolute path.

    Raises CheckpointError (unreadable, corrupt or unsafe file) or ConversionError (the networks do not map onto
    jaxgan's); nothing is written at `dst` in either case.
    """
    src = Path(src).resolve()
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {KINDS}, got {kind!r}")
    if not src.is_file():
        raise CheckpointError(f"{src}: no such file")
    if Path(dst).exists():
        raise FileExistsError(f"{Path(dst).resolve()} already exists; choose a new destination or remove it first")
    resolved_kind = detect_kind(src) if kind == "auto" else kind
    try:
        models, notes = _CONVERTERS[resolved_kind](src)
    except ConversionError as e:
        raise ConversionError(f"{src.name}: {e}") from None
    meta = {"source": {"file": src.name, "sha256": sha256_of(src), "kind": resolved_kind, **_json_safe(notes)},
            "converter": {"name": "jaxgan.checkpoints_convert", "version": CONVERTER_VERSION}}
    return save_checkpoint(dst, models, meta)
