"""jaxgan checkpoints: one orbax directory of pure-dict pytrees plus a JSON sidecar.

Follows the orbax-checkpoint docs ('Checkpointing PyTrees', 'Change sharding') and the Flax NNX guide 'Save and
load checkpoints': pure dicts (no nnx classes in the file), absolute paths,
restore with an abstract target carrying an explicit single-device sharding (so a checkpoint written on a GPU or
on several devices restores anywhere), and the async save awaited before the directory is published. A checkpoint
is written to a hidden temporary directory beside the destination and renamed when complete, so an interrupted
conversion never leaves a half-written checkpoint under the requested name.

Layout of `DST/`:
  jaxgan.json   {"format": "jaxgan-checkpoint", "format_version": 1, "models": {name: {"kind", "config"}}, ...meta}
  state/<name>/ one orbax pytree {"params": {...}, "buffers": {...}} per model, so each loads on its own
"""

import dataclasses
import json
import os
import shutil
import uuid
from pathlib import Path

import jax
import orbax.checkpoint as ocp
from flax import nnx

from jaxgan.models import lpips, pix2pixhd, segbranch, stylegan2, vgg19
from jaxgan.models.lpips import LPIPSConfig
from jaxgan.models.pix2pixhd import (Pix2PixHDDiscriminatorConfig, Pix2PixHDEncoderConfig,
                                     Pix2PixHDGeneratorConfig)
from jaxgan.models.segbranch import SegBranchConfig
from jaxgan.models.stylegan2 import DiscriminatorConfig, GeneratorConfig, SplitModel
from jaxgan.models.vgg19 import VGG19Config

SIDECAR = "jaxgan.json"
STATE_DIR = "state"
FORMAT = "jaxgan-checkpoint"
FORMAT_VERSION = 1

MODEL_KINDS = {
    "stylegan2-generator": GeneratorConfig,
    "stylegan2-discriminator": DiscriminatorConfig,
    "lpips-vgg": LPIPSConfig,
    "segbranch": SegBranchConfig,
    "pix2pixhd-generator": Pix2PixHDGeneratorConfig,
    "pix2pixhd-discriminator": Pix2PixHDDiscriminatorConfig,
    "pix2pixhd-encoder": Pix2PixHDEncoderConfig,
    "vgg19-features": VGG19Config,
}


def abstract_model(cfg) -> SplitModel:
    """The restore target (shapes and dtypes only) of a model with config `cfg`, whichever family it belongs to."""
    if isinstance(cfg, LPIPSConfig):
        return lpips.abstract_model(cfg)
    if isinstance(cfg, SegBranchConfig):
        return segbranch.abstract_model(cfg)
    if isinstance(cfg, pix2pixhd.CONFIGS):
        return pix2pixhd.abstract_model(cfg)
    if isinstance(cfg, VGG19Config):
        return vgg19.abstract_model(cfg)
    return stylegan2.abstract_model(cfg)


class CheckpointFormatError(ValueError):
    """The directory is not a jaxgan checkpoint this version can read."""


def config_to_dict(cfg) -> dict:
    kind = next((k for k, cls in MODEL_KINDS.items() if isinstance(cfg, cls)), None)
    if kind is None:
        raise TypeError(f"no checkpoint kind for config type {type(cfg).__name__}")
    return {"kind": kind, "config": dataclasses.asdict(cfg)}


def config_from_dict(entry: dict):
    try:
        cls = MODEL_KINDS[entry["kind"]]
        fields = {f.name for f in dataclasses.fields(cls)}
        values = {k: tuple(v) if isinstance(v, list) else v for k, v in entry["config"].items()}
        unknown = set(values) - fields
        if unknown:
            raise CheckpointFormatError(f"unknown config fields for {entry['kind']}: {sorted(unknown)}")
        return cls(**values)
    except (KeyError, TypeError) as e:
        raise CheckpointFormatError(f"bad model entry in {SIDECAR}: {e}") from None


def save_checkpoint(path, models: dict[str, SplitModel], meta: dict | None = None) -> Path:
    """Write `models` ({name: SplitModel}) and `meta` (JSON-serialisable) to the new directory `path`."""
    path = Path(path).resolve()
    if path.exists():
        raise FileExistsError(f"{path} already exists; choose a new destination or remove it first")
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.parent / f".{path.name}.partial-{uuid.uuid4().hex[:8]}"
    sidecar = {"format": FORMAT, "format_version": FORMAT_VERSION,
               "models": {name: config_to_dict(m.config) for name, m in models.items()}, **(meta or {})}
    tree = {name: {"params": nnx.to_pure_dict(m.params), "buffers": nnx.to_pure_dict(m.buffers)}
            for name, m in models.items()}
    try:
        tmp.mkdir()
        with ocp.StandardCheckpointer() as checkpointer:
            for name, subtree in tree.items():
                checkpointer.save(tmp / STATE_DIR / name, subtree)
            checkpointer.wait_until_finished()  # surface background save errors here, not never
        (tmp / SIDECAR).write_text(json.dumps(sidecar, indent=2, sort_keys=True))
        _publish(tmp, path)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return path


def _publish(tmp: Path, path: Path) -> None:
    os.replace(tmp, path)  # atomic on one filesystem: the checkpoint appears complete or not at all


def read_sidecar(path) -> dict:
    path = Path(path).resolve()
    sidecar_path = path / SIDECAR
    if not sidecar_path.is_file():
        raise CheckpointFormatError(f"{path} is not a jaxgan checkpoint (no {SIDECAR}); "
                                    "convert a .pkl or .pt first with `jaxgan convert`")
    try:
        sidecar = json.loads(sidecar_path.read_text())
    except json.JSONDecodeError as e:
        raise CheckpointFormatError(f"{sidecar_path} is not valid JSON: {e}") from None
    if sidecar.get("format") != FORMAT or sidecar.get("format_version") != FORMAT_VERSION:
        raise CheckpointFormatError(f"{path}: unsupported checkpoint format {sidecar.get('format')!r} "
                                    f"version {sidecar.get('format_version')!r}")
    return sidecar


def load_checkpoint(path, names: tuple[str, ...] | None = None) -> tuple[dict[str, SplitModel], dict]:
    """Load the models `names` (default: all) of the checkpoint at `path`; returns ({name: SplitModel}, sidecar)."""
    path = Path(path).resolve()
    sidecar = read_sidecar(path)
    available = sidecar["models"]
    names = tuple(available) if names is None else names
    missing = [n for n in names if n not in available]
    if missing:
        raise CheckpointFormatError(f"{path} has no model {missing[0]!r}; it holds {sorted(available)}")
    device = jax.local_devices()[0]
    sharding = jax.sharding.SingleDeviceSharding(device)

    def target_of(state):
        return jax.tree_util.tree_map(lambda s: jax.ShapeDtypeStruct(s.shape, s.dtype, sharding=sharding),
                                      nnx.to_pure_dict(state))

    abstract = {name: abstract_model(config_from_dict(available[name])) for name in names}
    with ocp.StandardCheckpointer() as checkpointer:
        for model_name, model in abstract.items():
            target = {"params": target_of(model.params), "buffers": target_of(model.buffers)}
            restored = checkpointer.restore(path / STATE_DIR / model_name, target)
            nnx.replace_by_pure_dict(model.params, restored["params"])
            nnx.replace_by_pure_dict(model.buffers, restored["buffers"])
    return abstract, sidecar
