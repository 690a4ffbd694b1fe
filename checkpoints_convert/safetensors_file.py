"""`.safetensors` files of StyleGAN2 generators (what `jaxgan export --format safetensors` writes) -> jaxgan models.

The file format is huggingface/safetensors' (`docs/source/metadata_parsing.mdx`, safetensors 0.4): an 8-byte
little-endian header length, a JSON header (each tensor's dtype, shape and byte range; `__metadata__`, str -> str),
then the raw tensor bytes. It holds data only, so it is read with the `safetensors` package's numpy API. A jaxgan
export records its layout and the exact jaxgan model config in `__metadata__` (`format` 'jaxgan-export', `layout`,
`model`: the JSON of `jaxgan.checkpoint.config_to_dict`); a file without them is read like a `.pt` of its layout:
layout from the keys, config from the tensor shapes. The layouts are the official state dicts: stylegan2-ada's
`Generator.state_dict()` as it is, rosinality's checkpoint dict `{'g_ema': state dict, 'latent_avg': tensor}`
flattened with dots (`g_ema.style.1.weight`, `latent_avg`), since a safetensors file is one flat table.
"""

import json
import os
import struct

from checkpoints_convert.keymap import ConversionError
from checkpoints_convert.rosinality import convert_rosinality_data
from checkpoints_convert.stylegan2_pkl import INFERRED_CONFIG, convert_generator_state_dict
from checkpoints_convert.torch_reader import CheckpointError
from jaxgan.checkpoint import CheckpointFormatError, config_from_dict

METADATA_FORMAT = "jaxgan-export"
ROSINALITY_PREFIX = "g_ema."
LATENT_AVG = "latent_avg"


def is_safetensors(path) -> bool:
    """Whether the file starts like a safetensors file: a header length that fits the file, then a JSON object."""
    with open(path, "rb") as stream:
        head = stream.read(9)
    if len(head) < 9:
        return False
    (length,) = struct.unpack("<Q", head[:8])
    return head[8:9] == b"{" and 2 <= length <= os.path.getsize(path) - 8


def read_safetensors(path) -> tuple[dict, dict]:
    """({name: numpy array}, metadata) of a safetensors file; a one-line CheckpointError if it cannot be read."""
    from safetensors import safe_open
    try:
        with safe_open(os.fspath(path), framework="numpy") as f:
            return {key: f.get_tensor(key) for key in f.keys()}, dict(f.metadata() or {})
    except Exception as e:  # safetensors' SafetensorError (bad header, truncated data), OSError
        raise CheckpointError(f"cannot read {path}: not a valid safetensors file ({' '.join(str(e).split())})") \
            from None


def layout_of(tensors: dict, metadata: dict) -> str:
    if "layout" in metadata:
        return metadata["layout"]
    if any(key.startswith(ROSINALITY_PREFIX) for key in tensors):
        return "rosinality"
    return "stylegan2-ada"


def convert_safetensors(path) -> tuple[dict, dict]:
    """Read a StyleGAN2 generator `.safetensors`; returns ({'G': generator}, notes)."""
    tensors, metadata = read_safetensors(path)
    layout = layout_of(tensors, metadata)
    cfg = None
    if metadata.get("format") == METADATA_FORMAT and "model" in metadata:
        try:
            cfg = config_from_dict(json.loads(metadata["model"]))
        except (json.JSONDecodeError, CheckpointFormatError, ValueError) as e:
            raise ConversionError(f"{path}: bad jaxgan model config in the safetensors metadata ({e})") from None
    notes = {"format": "safetensors", "layout": layout,
             "config": "from the file's metadata" if cfg is not None else INFERRED_CONFIG}
    if layout == "stylegan2-ada":
        return {"G": convert_generator_state_dict(tensors, cfg)}, notes
    if layout == "rosinality":
        unknown = sorted(k for k in tensors if k != LATENT_AVG and not k.startswith(ROSINALITY_PREFIX))
        if unknown:
            raise ConversionError(f"{path}: rosinality layout, but keys outside g_ema.*: {', '.join(unknown)}")
        data = {"g_ema": {k[len(ROSINALITY_PREFIX):]: v for k, v in tensors.items() if k != LATENT_AVG},
                "latent_avg": tensors.get(LATENT_AVG)}
        models, rosinality_notes = convert_rosinality_data(data, path, cfg)
        return models, {**rosinality_notes, **notes}
    raise ConversionError(f"{path}: unknown layout {layout!r} in the safetensors metadata")
